"""`open_runtime()`: the zmq context, node channel, runs nursery and `Runtime` of a daemon.

The background daemon (`daemon.main`) and `flow run` (`daemon.foreground`) both supervise
runs with the same parts; this is the one place that builds them, in the same order, and
takes them down again.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import zmq

from daemon.keeper.logs import Tee
from daemon.model.errors import ControlSocketUnavailable
from daemon.run import dynamic, params
from daemon.run.node_channel import OPTIONS, NodeChannel, bind_router
from daemon.run.peer_outbox import PeerOutbox
from daemon.run.runtime import Runtime, serve_nursery
from daemon.run.zmq_trio import SocketOwner
from daemon.store import Store
from node_sdk import paths


@asynccontextmanager
async def open_runtime(
    home: Path,
    sockets: Path,
    store: Store,
    *,
    origin: str = "daemon",
    tee: Tee | None = None,
    dynamic_nodes: bool = True,
) -> AsyncIterator[Runtime]:
    """A `Runtime` whose node channel is bound in `sockets` and served until the block ends.

    Leaving the block cancels what is left (a live run stops its nodes first) and closes
    every socket of the context, the caller's own included. `dynamic_nodes`: accept
    `path: dynamic` attaches and watch their heartbeats (the daemon; not `flow run`).
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{sockets / paths.NODES_SOCKET}"
    try:
        try:
            nodes = bind_router(context, endpoint, OPTIONS)
        except (zmq.ZMQError, OSError) as exc:
            raise ControlSocketUnavailable(
                f"cannot bind the node channel in {sockets}: {exc}"
            ) from exc
        async with trio.open_nursery() as nursery:
            runs_nursery: trio.Nursery = await nursery.start(serve_nursery)
            rt = Runtime(
                home=home,
                socket_dir=sockets,
                store=store,
                nodes_endpoint=endpoint,
                nursery=runs_nursery,
                context=context,
                origin=origin,
                tee=tee,
            )
            owner = SocketOwner(nodes, name="node channel", on_drop=rt.note_drops,
                                peers=PeerOutbox(name="node channel"))  # fmt: skip
            attach = functools.partial(dynamic.attach, rt) if dynamic_nodes else None
            rt.params = params.ParamDesk(store)
            rt.channel = NodeChannel(
                owner=owner, find_slot=rt.find_slot, heard=rt.heard_from, attach=attach,
                greet=functools.partial(params.greeting, store), param_acks=rt.params.on_ack,
                route=rt.run_send,
            )  # fmt: skip
            nursery.start_soon(owner.serve, rt.channel.on_message)
            if dynamic_nodes:
                nursery.start_soon(dynamic.watch_dynamic_nodes, rt)
            yield rt
            nursery.cancel_scope.cancel()
    finally:
        context.destroy(linger=0)
