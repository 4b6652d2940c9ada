"""`python -m daemon serve|end-orphans [--home PATH]`: the flow daemon's process entries.

`serve` runs the daemon in the foreground; `end-orphans` ends the run keepers a dead
daemon left (what `flow down` does when no daemon answers) and prints how many.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from daemon.model import settings
from node_sdk import paths


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon", description="the flow daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve until shut down")
    serve.add_argument("--home", type=Path, default=None, help="FLOW_HOME to serve")
    orphans = sub.add_parser("end-orphans", help="end the run keepers of a dead daemon")
    orphans.add_argument("--home", type=Path, default=None, help="FLOW_HOME to clean up")
    args = parser.parse_args()
    home = (args.home or paths.flow_home()).expanduser().resolve()
    if args.command == "end-orphans":
        from daemon.control.orphans import end_orphaned_keepers

        print(end_orphaned_keepers(home))
        return 0
    os.environ["FLOW_HOME"] = str(home)  # nodes inherit it, and the CLI finds the same home
    try:  # read once, at start: a bad value is one line and no daemon
        settings.install(settings.load(home))
    except settings.SettingsError as exc:
        print(f"flow daemon: error: {exc}", file=sys.stderr)
        return 2
    from daemon.main import run_daemon  # the daemon's imports are for `serve` only

    return run_daemon(home)


if __name__ == "__main__":
    raise SystemExit(main())
