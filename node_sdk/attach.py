"""Dynamic attach (SPEC 6): ask the local daemon for the configuration of a dynamic node.

A short-lived DEALER with identity `attach/<pid>/<hex>` sends `attach` on the node channel
and waits for `attached {config}` or `refused {error}`; the node then joins with that
configuration exactly as a spawned node does with `FLOW_NODE_CONFIG`.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Final

import zmq

from node_sdk import channel, paths, private, uncaught
from node_sdk import config as _config
from node_sdk.errors import NodeError

DATAFLOW_ENV: Final = "FLOW_DATAFLOW"
ATTACH_TIMEOUT_S: Final = 10.0


def attach(
    node_id: str, dataflow: str | None = None, *, timeout_s: float = ATTACH_TIMEOUT_S
) -> _config.NodeConfig:
    """The configuration the daemon grants to `node_id`; NodeError with its one-line refusal."""
    uncaught.quiet_ctrl_c(node_id)
    if dataflow is None:
        dataflow = os.environ.get(DATAFLOW_ENV) or None
    home = paths.flow_home()
    try:  # a folder another user made would receive our attach: never talk to it
        private.check_private_dir(paths.socket_dir(home))
    except private.NotPrivate as exc:
        raise NodeError(str(exc)) from None
    if not paths.nodes_socket(home).exists():
        raise NodeError(f"no flow daemon for FLOW_HOME {home}: run flow up")
    endpoint = paths.nodes_endpoint(home)
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.identity = f"attach/{os.getpid()}/{secrets.token_hex(4)}".encode()
        dealer.connect(endpoint)
        dealer.send(channel.encode(channel.Attach(node_id, dataflow, os.getpid())))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not dealer.poll(int(remaining * 1000) + 1):
                raise NodeError(
                    f"no answer from the flow daemon at {endpoint} within {timeout_s:g} s "
                    f"to attaching node {node_id!r}"
                )
            try:
                reply = channel.decode(dealer.recv())
            except channel.BadMessage as exc:
                if exc.kind in ("attached", "refused"):  # the answer, and it is malformed
                    raise NodeError(f"bad attach reply from the daemon: {exc}") from None
                continue
            except NodeError:
                continue  # not an answer; keep waiting for one
            if isinstance(reply, channel.Refused):
                raise NodeError(reply.error or "attach refused by the daemon")
            if isinstance(reply, channel.Attached):
                return reply.config
    finally:
        ctx.destroy(linger=0)
