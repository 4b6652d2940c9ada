"""`flow run`: one dataflow in the foreground, no daemon, with the daemon's own supervisor.

It records the run in the same state store (origin `foreground`, never recovered) and
writes the same node logs, so `flow logs` works on it afterwards; node output is also
handed to `tee` as it comes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from daemon.keeper.logs import Tee
from daemon.model import pids
from daemon.model.errors import FlowError, first_leaf
from daemon.model.run_rows import failed_while_going
from daemon.model.states import NodeStatus
from daemon.run.assembly import open_runtime
from daemon.run.recovery import settle_foreground, sweep_dead_foreground_dirs
from daemon.run.runtime import prepare_private_home, prepare_socket_dir
from daemon.run.supervisor import DEFAULT_GRACE_S, Run
from daemon.store import Store
from node_sdk import paths

OnSignal = Callable[[signal.Signals, bool], None]
# (phase, node ids awaited, seconds since the phase began): `start` while nodes connect,
# `stop` while they end after a stop; called every PROGRESS_EVERY_S while that lasts
OnProgress = Callable[[str, list[str], float], None]
# a node failed for good while the rest of the run goes on: its RunInfo node
OnFailed = Callable[[dict[str, Any]], None]
PROGRESS_EVERY_S = 0.5


def foreground_socket_dir() -> Path:
    # per process, so a foreground run never collides with a daemon or another `flow run`;
    # a random part, so that another user cannot make it first (a pid is easy to guess)
    return Path("/tmp") / f"flow-{os.getuid()}-fg{os.getpid()}-{secrets.token_hex(6)}"


def run_foreground_sync(
    path: Path,
    text: str,
    env: dict[str, str],
    *,
    stop_after: float | None,
    tee: Tee,
    grace: float = DEFAULT_GRACE_S,
    on_signal: OnSignal | None = None,
    name: str | None = None,
    on_progress: OnProgress | None = None,
    record: str | None = None,
    on_failed: OnFailed | None = None,
) -> dict[str, Any]:
    """`flow run`'s one entry: run one dataflow to its end under its own trio loop; returns
    its run info. Ctrl-C stops it (twice: at once).

    SIGINT, SIGTERM, SIGPIPE (stdout's reader left) and SIGHUP (its terminal closed; not
    when ignored, as `nohup` does) all stop the run the same way;
    `on_signal(sig, first)` hears of each, `first` False once a stop is under way.
    `on_progress` hears which nodes a start or a stop is waiting for (see `OnProgress`).

    `path` must be absolute (the caller resolves it, outside the event loop); so must
    `record`, an MCAP file every output is recorded into.
    """
    hooks = _Hooks(on_signal, on_progress, record, on_failed)
    return trio.run(_watched, path, text, env, stop_after, tee, grace, name, hooks)


@attrs.frozen
class _Hooks:
    on_signal: OnSignal | None
    on_progress: OnProgress | None
    record: str | None = None
    on_failed: OnFailed | None = None


async def _watched(
    path: Path,
    text: str,
    env: dict[str, str],
    stop_after: float | None,
    tee: Tee,
    grace: float,
    name: str | None,
    hooks: _Hooks,
) -> dict[str, Any]:
    stops = [signal.SIGINT, signal.SIGTERM, signal.SIGPIPE]
    # the terminal closed (a window, an ssh session): as SIGTERM, unless `nohup` (or the
    # caller) set it ignored, which asks the run to live on without a terminal
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        stops.append(signal.SIGHUP)
    # opened first: no signal finds the socket folder made or a node spawned, unwatched
    with trio.open_signal_receiver(*stops) as signals:
        try:
            return await _run(path, text, env, signals, stop_after, tee, grace, name, hooks)
        except BaseExceptionGroup as group:  # the run's nursery: an error of flow's that
            leaf = first_leaf(group)  # ends it (a start refused: too few descriptors) alone
            if isinstance(leaf, FlowError):
                raise leaf from None
            raise


async def _run(
    path: Path,
    text: str,
    env: dict[str, str],
    signals: AsyncIterator[int],
    stop_after: float | None,
    tee: Tee,
    grace: float,
    name: str | None,
    hooks: _Hooks,
) -> dict[str, Any]:
    home = paths.flow_home()
    prepare_private_home(home)
    store = Store.open(paths.state_db(home))
    # a `flow run` killed with SIGKILL could not clean up: its folder, its `running` record
    sweep_dead_foreground_dirs()
    for stale in store.interrupted_runs():
        if str(stale["origin"]).startswith("foreground"):
            settle_foreground(store, stale)
    sockets = foreground_socket_dir()
    prepare_socket_dir(sockets)
    try:
        origin = f"foreground:{pids.tag()}"  # pid + create time: never reused
        runtime = open_runtime(home, sockets, store, origin=origin, tee=tee, dynamic_nodes=False)
        started: list[Run] = []
        ready = trio.Event()
        async with runtime as rt, trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, signals, started, ready, grace, hooks.on_signal)
            run = await rt.start_run(str(path), text, name, env, hooks.record)
            started.append(run)
            ready.set()
            if hooks.on_progress is not None:
                nursery.start_soon(_report_progress, run, hooks.on_progress, hooks.on_failed)
            if stop_after is not None:
                nursery.start_soon(_stop_after, run, stop_after, grace)
            await run.done.wait()
            nursery.cancel_scope.cancel()
        info = store.run(run.id)
        assert info is not None
        return info
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
        store.close()


async def _report_progress(run: Run, report: OnProgress, on_failed: OnFailed | None) -> None:
    """Say which nodes the start barrier, then a stop, waits for, while it waits, and each
    node that failed for good while the others go on (the nursery is cancelled when the
    run has ended)."""
    began = trio.current_time()
    stop_began: float | None = None
    told: set[str] = set()
    while True:
        if on_failed is not None:
            _tell_failures(run, told, on_failed)
        now = trio.current_time()
        if run.stop_requested:
            stop_began = now if stop_began is None else stop_began
            waiting = [s.id for s in run.spawned if not s.finished.is_set()]
            report("stop", waiting, now - stop_began)
        elif not run.released:
            waiting = [s.id for s in run.spawned if not s.settled.is_set()]
            if waiting:
                report("start", waiting, now - began)
        await trio.sleep(PROGRESS_EVERY_S)


def _tell_failures(run: Run, told: set[str], on_failed: OnFailed) -> None:
    """The nodes that failed since the last look while another still runs (the run's
    info read only once a slot has)."""
    if any(s.status is NodeStatus.FAILED and s.id not in told for s in run.spawned):
        for node in failed_while_going(run.info().get("nodes", []), told):
            on_failed(node)


async def _stop_after(run: Run, delay: float, grace: float) -> None:
    await trio.sleep(delay)
    await run.stop(grace)


async def _stop_on_signals(
    signals: AsyncIterator[int],
    started: list[Run],
    ready: trio.Event,
    grace: float,
    on_signal: OnSignal | None,
) -> None:
    # SIGPIPE is otherwise ignored by Python: a write to a pipe whose reader left fails
    # with EPIPE in whichever thread wrote, while the run streams on to nobody
    async with trio.open_nursery() as nursery:
        asked = False  # not run.stop_requested: a second signal may come before it is set
        async for number in signals:
            await ready.wait()  # a signal during the start stops the run once it exists
            run = started[0]
            first = not (asked or run.stop_requested)
            asked = True
            if on_signal is not None:
                on_signal(signal.Signals(number), first)
            if first:
                nursery.start_soon(run.stop, grace)
            # a second Ctrl-C or SIGTERM: no more grace; a terminal that goes sends SIGHUP
            # more than once (the kernel, the shell to its jobs), and a reader that left
            # says nothing of hurry
            elif number not in (signal.SIGPIPE, signal.SIGHUP):
                run.record_run(stop_grace=0.0)  # forced: how its nodes ended is said so
                nursery.start_soon(run.stop, 0.0)
