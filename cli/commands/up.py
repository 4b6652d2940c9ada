"""`flow up`: start the local daemon in the background (idempotent)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from daemon.model.replies import PingReply

# the daemon outlives us: holding its Popen keeps the destructor from warning meanwhile
_DETACHED: list[subprocess.Popen[bytes]] = []

START_DEADLINE = 15.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="start the local flow daemon in the background",
        description="Start the flow daemon of FLOW_HOME in the background and wait until it "
        "answers; if one already answers, say so and exit 0.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.commands.config import load_settings

    home = client.home_path()
    load_settings(home)  # the daemon would refuse a bad setting: say so here, exit 2
    client.check_socket_folder(home)  # the daemon would refuse it too; say so first
    # a pid file naming a live daemon is worth a ping; otherwise none can answer
    info = client.ping(timeout=2.0, home=home) if daemon_process_alive(home) else None
    if info is not None:
        render.info(f"flow daemon already running (pid {info.pid})")
        return 0
    proc = spawn_daemon(home)
    info = wait_until_up(proc, home)
    # ours, or one that already held FLOW_HOME (its pid file was gone) and made ours give way
    verb = "started" if info.pid == proc.pid else "already running"
    render.info(f"flow daemon {verb} (pid {info.pid})")
    return 0


def spawn_daemon(home: Path) -> subprocess.Popen[bytes]:
    """`python -m daemon serve --home HOME`, detached, output appended to daemon.log."""
    from cli.errors import CliError
    from node_sdk import paths, private

    try:
        private.prepare_home(home)
    except private.NotPrivate as exc:
        raise CliError(str(exc)) from None
    env = dict(os.environ, FLOW_HOME=str(home))
    log_fd = os.open(
        paths.daemon_log(home), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600
    )
    with open(log_fd, "ab") as log:
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


class _NotUpYet(Exception):
    """The daemon has not answered a ping yet."""


def wait_until_up(proc: subprocess.Popen[bytes], home: Path) -> PingReply:
    """Ping through the retry helper until the daemon answers, it exits, or the deadline."""
    from cli import client
    from cli.errors import CliError
    from daemon.model.retry import Backoff, RetryExhausted, retry_sync

    def ping_once() -> PingReply:
        info = client.ping(timeout=0.5, home=home)
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
        raise _NotUpYet(f"pid {proc.pid} has not answered")

    policy = Backoff(attempts=60, initial=0.02, max_delay=0.5, deadline=START_DEADLINE)
    try:
        return retry_sync(
            ping_once, what="starting the daemon", policy=policy, retry_on=(_NotUpYet,)
        )
    except RetryExhausted:
        raise CliError(
            f"the flow daemon (pid {proc.pid}) did not answer within {START_DEADLINE:g} s",
            details=log_tail(home),
        ) from None


def daemon_process_alive(home: Path) -> bool:
    """True when daemon.pid names a live `python -m daemon` process."""
    from daemon.model.pids import daemon_pid

    return daemon_pid(home) is not None


def log_tail(home: Path, lines: int = 15) -> list[str]:
    """The last lines of daemon.log, to show why the daemon did not start."""
    from node_sdk import paths

    try:
        text = paths.daemon_log(home).read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
