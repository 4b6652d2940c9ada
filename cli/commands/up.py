"""`flow up`: start the local daemon in the background (idempotent), alone or in a cluster."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # every `flow` command imports this module to build its parser
    from daemon.model.replies_runs import PingReply

# the daemon outlives us: holding its Popen keeps the destructor from warning meanwhile
_DETACHED: list[subprocess.Popen[bytes]] = []
_LOG_START: dict[Path, int] = {}  # daemon.log's size when each home's daemon was spawned

START_DEADLINE = 15.0
SHUTDOWN_WAIT_S = 120.0  # a `flow down` under way: its runs' grace, and their SIGKILL
JOIN_SLACK_S = 10.0  # the join process's start and end, beyond its wait for an answer


def register(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="start the local flow daemon in the background",
        description="Start the flow daemon of FLOW_HOME in the background and wait until it "
        "answers; if one already answers, say so and exit 0. With --machine it is one machine "
        "of a cluster: --listen makes it the coordinator, --join TOKEN admits it to one (once; "
        "a restarted member rejoins by itself). docs/cluster.md.",
    )
    p.add_argument("--machine", metavar="NAME", default=None,
                   help="this machine's name in a cluster")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--listen", metavar="tcp://ADDR:PORT", default=None,
                      help="coordinate a cluster: accept machines on this address (CURVE)")
    role.add_argument("--join", metavar="TOKEN", default=None,
                      help="join the cluster of a `flow cluster token` (- reads it from stdin)")
    p.add_argument("--insecure-loopback", action="store_true",
                   help="with --listen on a loopback address only: plain TCP, no CURVE "
                   "(for trying things out on one host)")
    p.add_argument("--metrics", metavar="ADDR:PORT", default=None,
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (a bare PORT: "
                   "127.0.0.1; 0 picks a free port, shown by flow status; docs/telemetry.md)")
    p.add_argument("--otlp", metavar="URL", default=None,
                   help="push the same metrics over OTLP/HTTP to URL (e.g. "
                   "http://127.0.0.1:4318/v1/metrics; needs the otlp extra)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.commands.config import load_settings

    home = client.home_path()
    load_settings(home)  # the daemon would refuse a bad setting: say so here, exit 2
    client.check_socket_folder(home)  # the daemon would refuse it too; say so first
    serve_args = cluster_arguments(args) + metrics_arguments(args)
    # a pid file naming a live daemon is worth a ping; otherwise none can answer
    info = client.ping(timeout=2.0, home=home) if daemon_process_alive(home) else None
    if info is not None and info.stopping:  # a `flow down` under way: the next daemon is ours
        wait_shutdown(info.pid)
        info = None
    if info is not None:
        render.info(f"flow daemon already running (pid {info.pid})")
        if serve_args:
            render.warning("--machine, --listen, --join and --metrics apply when a daemon "
                           "starts: flow down first")  # fmt: skip
        return 0
    if args.join is not None:
        join_cluster(home, args.machine, args.join)
    proc = spawn_daemon(home, serve_args)
    info = wait_until_up(proc, home)
    # ours, or one that already held FLOW_HOME (its pid file was gone) and made ours give way
    verb = "started" if info.pid == proc.pid else "already running"
    render.info(f"flow daemon {verb} (pid {info.pid})")
    return 0


def wait_shutdown(pid: int) -> None:
    """Wait for a daemon that is shutting down to end, at most SHUTDOWN_WAIT_S: it stops
    its runs within their grace, and starts nothing new meanwhile."""
    from cli import render
    from cli.errors import CliError
    from daemon.model import pids

    render.info(f"the flow daemon (pid {pid}) is shutting down: waiting for it to end")
    deadline = time.monotonic() + SHUTDOWN_WAIT_S
    while pids.alive(pid):
        if time.monotonic() >= deadline:
            raise CliError(f"the flow daemon (pid {pid}) is still shutting down after "
                           f"{SHUTDOWN_WAIT_S:g} s: run flow up once it has ended")  # fmt: skip
        time.sleep(0.05)


def cluster_arguments(args: argparse.Namespace) -> list[str]:
    """`serve`'s cluster options, checked here first: a bad one is one line and exit 2."""
    from cli.errors import BAD_INPUT, CliError
    from daemon.model.cluster import (
        ClusterConfigError,
        check_machine_name,
        parse_listen,
        parse_token,
    )

    try:
        if (args.listen or args.join) and not args.machine:
            raise ClusterConfigError("--listen and --join need --machine NAME")
        if args.insecure_loopback and not args.listen:
            raise ClusterConfigError("--insecure-loopback goes with --listen")
        if args.machine is None:
            return []
        serve = ["--machine", check_machine_name(args.machine)]
        if args.listen is not None:
            listen = parse_listen(args.listen, plain=args.insecure_loopback)
            serve += ["--listen", listen.endpoint]
            serve += ["--insecure-loopback"] if listen.plain else []
        if args.join not in (None, "-"):
            parse_token(args.join)
    except ClusterConfigError as exc:
        raise CliError(str(exc), BAD_INPUT) from None
    return serve


def metrics_arguments(args: argparse.Namespace) -> list[str]:
    """`serve`'s --metrics and --otlp, checked here first; a non-loopback address is said
    aloud, a missing extra is one line."""
    from cli import render
    from cli.errors import BAD_INPUT, CliError
    from daemon.model.metrics import MetricsAddressError, check_otlp_url, parse_metrics_address

    serve = []
    try:
        if args.otlp is not None:
            serve += ["--otlp", check_otlp_url(args.otlp)]
        if args.metrics is not None:
            address = parse_metrics_address(args.metrics)
            serve += ["--metrics", str(address)]
            if not address.is_loopback:
                render.warning(f"metrics on {address}: reachable from other hosts, without "
                               "authentication (node ids, rates, memory)")  # fmt: skip
    except MetricsAddressError as exc:
        raise CliError(str(exc), BAD_INPUT) from None
    if args.otlp is not None and not _has("opentelemetry.sdk.metrics"):
        raise CliError("--otlp needs the otlp extra: pip install 'flow-runtime[otlp]'", BAD_INPUT)
    return serve


def _has(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def join_cluster(home: Path, machine: str, token: str) -> None:
    """`python -m daemon join`: admitted, or one line and exit 1 (the token goes on stdin)."""
    from cli import render
    from cli.errors import CliError
    from daemon.model.cluster import JOIN_TIMEOUT_S
    from node_sdk import private

    if token == "-":
        token = sys.stdin.readline(4096)
    try:
        private.prepare_home(home)
    except private.NotPrivate as exc:
        raise CliError(str(exc)) from None
    bound = JOIN_TIMEOUT_S + JOIN_SLACK_S
    try:
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "join", "--home", str(home), "--machine", machine],
            input=token.strip() + "\n",
            capture_output=True,
            text=True,
            env=dict(os.environ, FLOW_HOME=str(home)),
            check=False,
            timeout=bound,  # a join that hangs is killed: `flow up` never waits unbounded
        )
    except subprocess.TimeoutExpired:
        raise CliError(f"the join did not end within {bound:g} s and was stopped; "
                       "nothing was started: try again") from None  # fmt: skip
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"join exited {done.returncode}"]
        raise CliError(lines[-1].removeprefix("flow: error: "))
    render.info(done.stdout.strip())


def spawn_daemon(home: Path, serve_args: list[str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m daemon serve --home HOME`, detached, output appended to daemon.log."""
    from cli.errors import CliError
    from node_sdk import paths, private

    try:
        private.prepare_home(home)
    except private.NotPrivate as exc:
        raise CliError(str(exc)) from None
    env = dict(os.environ, FLOW_HOME=str(home))
    try:
        log_fd = os.open(
            paths.daemon_log(home), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
    except OSError as exc:
        raise CliError(private.open_failure(paths.daemon_log(home), exc)) from None
    with open(log_fd, "ab") as log:
        _LOG_START[home] = os.fstat(log_fd).st_size  # what this start writes comes after
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "serve", "--home", str(home), *(serve_args or [])],
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
            fatal, tail = start_log(home)
            if fatal:  # the daemon said why in one line: that is the error
                raise CliError(f"the flow daemon could not start: {fatal}")
            raise CliError(
                f"the flow daemon exited with status {code} while starting", details=tail
            )
        raise _NotUpYet(f"pid {proc.pid} has not answered")

    policy = Backoff(attempts=60, initial=0.02, max_delay=0.5, deadline=START_DEADLINE)
    try:
        return retry_sync(
            ping_once,
            what="starting the daemon",
            policy=policy,
            retry_on=(_NotUpYet,),
            expected=True,  # a daemon takes a moment to answer: not worth a warning each time
        )
    except RetryExhausted:
        raise CliError(
            f"the flow daemon (pid {proc.pid}) did not answer within {START_DEADLINE:g} s",
            details=start_log(home)[1],
        ) from None


def daemon_process_alive(home: Path) -> bool:
    """True when daemon.pid names a live `python -m daemon` process."""
    from daemon.model.pids import daemon_pid

    return daemon_pid(home) is not None


def start_log(home: Path, lines: int = 15) -> tuple[str | None, list[str]]:
    """What this start wrote to daemon.log (not what earlier daemons did): its `fatal:`
    cause, if it logged one, and its last lines, to show why the daemon did not start."""
    from node_sdk import paths

    try:
        with paths.daemon_log(home).open("rb") as log:
            log.seek(_LOG_START.get(home, 0))
            text = log.read().decode(errors="replace")
    except OSError:
        return None, []
    written = text.splitlines()
    fatal = [line.split("fatal: ", 1)[1] for line in written if "CRITICAL" in line
             and "fatal: " in line]  # fmt: skip
    return (fatal[-1] if fatal else None), written[-lines:]
