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
import zmq

from daemon.keeper.logs import Tee
from daemon.model import pids
from daemon.model.protocol import SOCKET_MAX_MSG_BYTES
from daemon.run.node_channel import NodeChannel, bind_router
from daemon.run.runtime import Runtime, prepare_socket_dir, serve_nursery
from daemon.run.supervisor import DEFAULT_GRACE_S, Run
from daemon.run.zmq_trio import SocketOwner
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
    home.mkdir(parents=True, exist_ok=True)
    store = Store.open(paths.state_db(home))
    sockets = foreground_socket_dir()
    prepare_socket_dir(sockets)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        nodes = bind_router(context, f"ipc://{sockets / paths.NODES_SOCKET}")
        nodes.setsockopt(zmq.MAXMSGSIZE, SOCKET_MAX_MSG_BYTES)
        async with trio.open_nursery() as root:
            runs_nursery: trio.Nursery = await root.start(serve_nursery)
            rt = Runtime(
                home=home,
                socket_dir=sockets,
                store=store,
                nodes_endpoint=f"ipc://{sockets / paths.NODES_SOCKET}",
                nursery=runs_nursery,
                context=context,
                origin=f"foreground:{pids.tag()}",  # pid + create time: never reused
                tee=tee,
            )
            owner = SocketOwner(nodes)
            rt.channel = NodeChannel(owner=owner, find_slot=rt.find_slot)
            root.start_soon(owner.serve, rt.channel.on_message)
            run = await rt.start_run(str(path), text, None, env)
            root.start_soon(_stop_on_signals, run, grace)
            if stop_after is not None:
                root.start_soon(_stop_after, run, stop_after, grace)
            await run.done.wait()
            root.cancel_scope.cancel()
        info = store.run(run.id)
        assert info is not None
        return info
    finally:
        context.destroy(linger=0)
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
