"""`flow run`: one dataflow in the foreground, no daemon, with the daemon's own supervisor.

It records the run in the same state store (origin `foreground`, never recovered) and
writes the same node logs, so `flow logs` works on it afterwards; node output is also
handed to `tee` as it comes.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import trio

from daemon.keeper.logs import Tee
from daemon.model import pids
from daemon.run.assembly import open_runtime
from daemon.run.runtime import prepare_private_home, prepare_socket_dir
from daemon.run.supervisor import DEFAULT_GRACE_S, Run
from daemon.store import Store
from node_sdk import paths


def foreground_socket_dir() -> Path:
    # per process, so a foreground run never collides with a daemon or another `flow run`
    return Path("/tmp") / f"flow-{os.getuid()}-fg{os.getpid()}"


def run_foreground_sync(
    path: Path,
    text: str,
    env: dict[str, str],
    *,
    stop_after: float | None,
    tee: Tee,
    grace: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """The CLI's entry (`flow run`): `run_foreground` under its own trio loop."""
    return trio.run(
        lambda: run_foreground(path, text, env, stop_after=stop_after, tee=tee, grace=grace)
    )


async def run_foreground(
    path: Path,
    text: str,
    env: dict[str, str],
    *,
    stop_after: float | None,
    tee: Tee,
    grace: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """Run one dataflow to its end; returns its run info. Ctrl-C stops it (twice: at once).

    `path` must be absolute (the caller resolves it, outside the event loop).
    """
    home = paths.flow_home()
    prepare_private_home(home)
    store = Store.open(paths.state_db(home))
    sockets = foreground_socket_dir()
    prepare_socket_dir(sockets)
    try:
        origin = f"foreground:{pids.tag()}"  # pid + create time: never reused
        runtime = open_runtime(home, sockets, store, origin=origin, tee=tee, dynamic_nodes=False)
        async with runtime as rt, trio.open_nursery() as nursery:
            run = await rt.start_run(str(path), text, None, env)
            nursery.start_soon(_stop_on_signals, run, grace)
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


async def _stop_after(run: Run, delay: float, grace: float) -> None:
    await trio.sleep(delay)
    await run.stop(grace)


async def _stop_on_signals(run: Run, grace: float) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async for _ in signals:
                if run.stop_requested:
                    nursery.start_soon(run.stop, 0.0)  # second Ctrl-C: no more grace
                else:
                    nursery.start_soon(run.stop, grace)
