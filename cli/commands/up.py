"""`flow up`: start the local daemon in the background (idempotent)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# the daemon outlives us: holding its Popen keeps the destructor from warning meanwhile
_DETACHED: list[subprocess.Popen[bytes]] = []

START_DEADLINE = 15.0


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the local flow daemon in the background")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render

    home = client.home_path()
    info = client.ping(timeout=2.0, home=home)
    if info is not None:
        render.info(f"flow daemon already running (pid {info.get('pid')})")
        return 0
    proc = spawn_daemon(home)
    info = wait_until_up(proc, home)
    render.info(f"flow daemon started (pid {info.get('pid')})")
    return 0


def spawn_daemon(home: Path) -> subprocess.Popen[bytes]:
    """`python -m daemon serve --home HOME`, detached, output appended to daemon.log."""
    from daemon import paths

    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ, FLOW_HOME=str(home))
    with open(paths.daemon_log(home), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "serve", "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=str(home),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc


def wait_until_up(proc: subprocess.Popen[bytes], home: Path) -> dict[str, Any]:
    """Ping with exponential backoff until the daemon answers, it exits, or the deadline."""
    from cli import client
    from cli.errors import CliError

    deadline = time.monotonic() + START_DEADLINE
    delay = 0.02
    while True:
        info = client.ping(timeout=min(1.0, max(0.05, deadline - time.monotonic())), home=home)
        if info is not None:
            return info
        code = proc.poll()
        if code is not None:
            # maybe another `flow up` won the race and our child gave way to it
            info = client.ping(timeout=1.0, home=home)
            if info is not None:
                return info
            raise CliError(
                f"the flow daemon exited with status {code} while starting", details=log_tail(home)
            )
        if time.monotonic() >= deadline:
            raise CliError(
                f"the flow daemon (pid {proc.pid}) did not answer within {START_DEADLINE:g} s",
                details=log_tail(home),
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def log_tail(home: Path, lines: int = 15) -> list[str]:
    """The last lines of daemon.log, to show why the daemon did not start."""
    from daemon import paths

    try:
        text = paths.daemon_log(home).read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
