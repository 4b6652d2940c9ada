"""`python -m daemon serve [--home PATH]`: run the flow daemon in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from daemon.main import run_daemon
from daemon.model import settings
from node_sdk import paths


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon", description="the flow daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve until shut down")
    serve.add_argument("--home", type=Path, default=None, help="FLOW_HOME to serve")
    args = parser.parse_args()
    home = (args.home or paths.flow_home()).expanduser().resolve()
    os.environ["FLOW_HOME"] = str(home)  # nodes inherit it, and the CLI finds the same home
    try:  # read once, at start: a bad value is one line and no daemon
        settings.install(settings.load(home))
    except settings.SettingsError as exc:
        print(f"flow daemon: error: {exc}", file=sys.stderr)
        return 2
    return run_daemon(home)


if __name__ == "__main__":
    raise SystemExit(main())
