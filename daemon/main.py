"""The daemon's root: bind sockets, open the store, run the root nursery, exit on fatal errors.

Two catch points (SPEC 7.2): per request in `control`, and here around the root nursery.
Signals become the ordinary shutdown path, so there is one way to stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import trio
import zmq

from daemon.cluster.start import ClusterOptions, start_cluster
from daemon.control import topics
from daemon.control.registry import HANDLERS
from daemon.control.runs import stop_all
from daemon.control.server import ControlServer
from daemon.home_lock import HomeLocked, lock_home
from daemon.logfile import PatientFileHandler
from daemon.model import pids, settings
from daemon.model.errors import (
    FATAL_ERRORS,
    ControlSocketUnavailable,
    FatalError,
    StateStoreUnusable,
)
from daemon.model.metrics import Telemetry
from daemon.model.parts import CONTROL_FRAME_BYTES
from daemon.model.requests import Seconds, StopAll
from daemon.run import ipc_files, store_reserve
from daemon.run.assembly import open_runtime
from daemon.run.limits import fd_limit_refusal, trim_memory
from daemon.run.node_channel import bind_router
from daemon.run.peer_outbox import PeerOutbox
from daemon.run.recovery import recover_runs, settle_dead_foreground_runs
from daemon.run.runtime import Runtime, prepare_private_home, prepare_socket_dir, serve_nursery
from daemon.run.store_watch import catch_up, watch_store
from daemon.run.zmq_trio import SocketOwner
from daemon.store import Store
from node_sdk import paths, private

log = logging.getLogger("daemon")

SHUTDOWN_GRACE_S = 10.0
CONTROL_RCVHWM = 1
# a reply libzmq cannot take yet waits in the daemon's PeerOutbox, within its byte bounds
CONTROL_SNDHWM = 1


def other_daemon_pid(home: Path) -> int | None:
    """The pid of a live daemon already serving this home, if any."""
    pid = pids.daemon_pid(home)
    return pid if pid != os.getpid() else None


@contextlib.contextmanager
def hold_home_lock(home: Path) -> Iterator[None]:
    """One daemon per FLOW_HOME (SPEC 10): an exclusive flock held for the daemon's lifetime.

    A pid file can be deleted or be stale; the kernel drops the lock only when its holder
    dies, so a second daemon is refused even then. The descriptor is not inherited by
    keepers or nodes (Python opens files non-inheritable), so it dies with the daemon.
    """
    path = paths.daemon_lock_file(home)
    try:
        fd = lock_home(home)
    except OSError as exc:
        raise StateStoreUnusable(private.open_failure(path, exc)) from None
    except HomeLocked as exc:
        raise ControlSocketUnavailable(
            f"another flow daemon (pid {exc.holder}) holds {path}: it serves {home}"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing it releases the lock


async def serve(
    home: Path,
    cluster: ClusterOptions | None = None,
    metrics: Telemetry | None = None,
    *,
    task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED,
) -> None:
    prepare_private_home(home)  # before any bind or file
    with hold_home_lock(home):
        await _serve_locked(home, cluster or ClusterOptions(), task_status, metrics)


async def _serve_locked(
    home: Path,
    cluster: ClusterOptions,
    task_status: trio.TaskStatus[Runtime],
    metrics: Telemetry | None = None,
) -> None:
    other = other_daemon_pid(home)
    if other is not None:
        raise ControlSocketUnavailable(f"another flow daemon (pid {other}) serves {home}")
    warnings: list[str] = []
    store = Store.open(paths.state_db(home), on_corrupt=warnings.append)
    store_reserve.keep(home)  # room for the writes a full disk would refuse later
    for warning in warnings:
        _say(home, "error", warning)
    sockets = paths.socket_dir(home)
    prepare_socket_dir(sockets)
    own: dict[Path, ipc_files.Identity | None] = {}  # only these are removed at the end
    try:
        async with open_runtime(home, sockets, store) as rt:
            own[paths.nodes_socket(home)] = ipc_files.identity(paths.nodes_socket(home))
            control = _bind_control(rt, home, sockets)
            control_path = sockets / paths.CONTROL_SOCKET
            own[control_path] = ipc_files.identity(control_path)
            _write_pid_file(home)
            try:
                async with trio.open_nursery() as root:
                    rt.cluster = await start_cluster(root, rt, cluster)
                    if metrics is not None:  # a port it cannot have is fatal, at start
                        from daemon.run.metrics import serve_telemetry  # prometheus_client

                        rt.metrics_url = await root.start(
                            serve_telemetry, rt, metrics.address, metrics.otlp
                        )
                    await _serve_control(root, rt, control)
                    rt.degraded.extend(warnings)  # `flow status` shows them too
                    task_status.started(rt)
            finally:
                held = catch_up(rt)  # the runs' last writes, if the store takes them now
                if held:  # not even with the reserve freed: daemon.log says what follows
                    log.error("state store: the last writes of %d run(s) could not be saved "
                              "(FLOW_HOME full): a run stopped meanwhile comes back at the "
                              "next start, to be stopped again", held)  # fmt: skip
                _remove_pid_file(home)
    finally:
        _remove_sockets(sockets, own)
        store.close()


def _bind_control(rt: Runtime, home: Path, sockets: Path) -> zmq.Socket[bytes]:
    try:
        # what one connection can make the daemon hold: one small frame it has not read
        # yet and one being decoded (the rest wait in the client; daemon.model.parts),
        # and in libzmq one reply in its pipe and one being written. ROUTER_MANDATORY:
        # a reply to a full pipe is refused (EAGAIN) and kept in a PeerOutbox, not dropped
        options: dict[int, int] = {
            zmq.MAXMSGSIZE: CONTROL_FRAME_BYTES,
            zmq.RCVHWM: CONTROL_RCVHWM,
            zmq.SNDHWM: CONTROL_SNDHWM,
            zmq.ROUTER_MANDATORY: 1,
        }
        control = bind_router(rt.context, paths.control_endpoint(home), options)
    except (zmq.ZMQError, OSError) as exc:
        raise ControlSocketUnavailable(
            f"cannot bind the control socket in {sockets}: {exc}"
        ) from exc
    return control


async def _serve_control(root: trio.Nursery, rt: Runtime, control: zmq.Socket[bytes]) -> None:
    """The daemon's own tasks around the runtime; requests are served once recovery is done."""
    requests_nursery = await root.start(serve_nursery)
    control_owner = SocketOwner(
        control, name="control", on_drop=rt.note_drops, peers=PeerOutbox(name="control")
    )
    server = ControlServer(
        owner=control_owner,
        runtime=rt,
        handlers=HANDLERS,
        nursery=requests_nursery,
        hooks=os.environ.get("FLOW_TEST_HOOKS") == "1",
    )
    recovered = trio.Event()  # a signal during recovery waits for it: no run resumes after
    root.start_soon(_watch_signals, rt, recovered)
    root.start_soon(topics.expire_leases, rt)
    root.start_soon(watch_store, rt)
    root.start_soon(trim_memory)
    root.start_soon(server.expire_parts)
    root.start_soon(_shutdown_when_asked, rt, root)
    # requests wait until recovery is done, so `flow up` returns on a settled state
    await recover_runs(rt)
    recovered.set()
    root.start_soon(settle_dead_foreground_runs, rt)  # a `flow run` SIGKILLed from now on
    root.start_soon(control_owner.serve, server.on_message)
    log.info("flow daemon %d serving %s", os.getpid(), rt.home)


async def _watch_signals(rt: Runtime, recovered: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s: stopping every run", signal.Signals(signum).name)
            rt.shutting_down = True
            await recovered.wait()  # the runs it resumes are among those stopped
            for run in rt.active_runs():
                run.interrupted = True  # recovered at the next start (SPEC 7.4)
            await stop_all(rt, StopAll(grace=Seconds(SHUTDOWN_GRACE_S)))
            rt.shutdown_requested.set()
            return


async def _shutdown_when_asked(rt: Runtime, root: trio.Nursery) -> None:
    await rt.shutdown_requested.wait()
    await trio.sleep(0.1)  # let the shutdown reply leave before the sockets close
    root.cancel_scope.cancel()


def _say(home: Path, level: str, message: str) -> None:
    """One clear line in the daemon log, and on stderr unless stderr is that log."""
    log.log(logging.CRITICAL if level == "fatal" else logging.ERROR, "%s: %s", level, message)
    if not _stderr_is_log(home):
        print(f"flow daemon: {level}: {message}", file=sys.stderr)


def _stderr_is_log(home: Path) -> bool:
    try:
        err, log_file = os.fstat(2), paths.daemon_log(home).stat()
    except OSError:
        return False
    return (err.st_dev, err.st_ino) == (log_file.st_dev, log_file.st_ino)


def _remove_sockets(sockets: Path, own: dict[Path, ipc_files.Identity | None]) -> None:
    for path, identity in own.items():
        ipc_files.remove_own(path, identity)
    with contextlib.suppress(OSError):  # not empty: what is left is not ours to remove
        sockets.rmdir()


def _write_pid_file(home: Path) -> None:
    """daemon.pid, how clients tell a live daemon from a socket file left behind; a home
    that cannot take it (a full disk) is a state store that cannot be used."""
    path = paths.daemon_pid_file(home)
    try:
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()  # not left empty: the home lock says no other daemon wrote it
        raise StateStoreUnusable(f"cannot write {path}: {exc.strerror or exc}") from None


def _remove_pid_file(home: Path) -> None:
    with contextlib.suppress(OSError):
        if paths.daemon_pid_file(home).read_text().strip() == str(os.getpid()):
            paths.daemon_pid_file(home).unlink()


def find_fatal(exc: BaseException) -> FatalError | None:
    """The fatal error inside a (possibly grouped) exception, if there is one.

    Fatal means one of `FATAL_ERRORS`, the explicit list; everything else is recoverable.
    """
    if isinstance(exc, FATAL_ERRORS):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_fatal(inner)
            if found is not None:
                return found
    return None


def setup_logging(home: Path) -> None:
    handler: logging.Handler
    try:
        private.prepare_home(home)
        handler = PatientFileHandler(paths.daemon_log(home))  # keeps what a full disk refused
    except (OSError, private.NotPrivate):  # `serve` then says why, in one line
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.current().daemon_log_level)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; the (soft, hard) now in force.

    Every control connection, node and keeper link is a descriptor, and libzmq aborts the
    process when `accept` meets EMFILE on an ipc socket: the daemon takes all it may.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


def run_daemon(
    home: Path, cluster: ClusterOptions | None = None, metrics: Telemetry | None = None
) -> int:
    """Serve until shut down; returns the exit status."""
    os.umask(0o077)  # before the log file: only this user may read what we write
    setup_logging(home)
    soft, _ = raise_fd_limit()
    log.info("open-file limit: %d", soft)
    refusal = fd_limit_refusal(soft)
    if refusal is not None:
        _say(home, "fatal", refusal)
        return 1
    try:
        trio.run(serve, home, cluster, metrics)
    except BaseException as exc:
        fatal = find_fatal(exc)
        if fatal is None:
            if isinstance(exc, KeyboardInterrupt):
                return 130
            log.critical("daemon crashed", exc_info=exc)
            _say(home, "fatal", repr(exc))
            return 1
        _say(home, "fatal", str(fatal))
        return 1
    log.info("flow daemon %d stopped", os.getpid())
    return 0
