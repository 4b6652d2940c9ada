"""A `send_stdout_as` output's edges: one socket per receiving input, connected (a tcp://
one secured with the machine's CURVE keys), and the credits of a backpressure one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs
import zmq

from daemon.model.keeper_messages import StdoutKeys
from node_sdk.config import TcpSecurity, is_tcp
from node_sdk.errors import NodeError
from node_sdk.frames import with_seq
from node_sdk.wire import unpack_credit

if TYPE_CHECKING:
    from node_sdk.tcp import Curve

log = logging.getLogger(__name__)

SNDHWM = 1000


@attrs.define(eq=False)
class StdoutEdge:
    """One receiving input: a PUSH, or for a backpressure input a DEALER with credits."""

    endpoint: str
    socket: zmq.Socket[bytes]
    credits: int | None  # None: drop_oldest, no credit accounting
    receiver: str = ""  # "node/input", as node_sdk.flush names an edge's receiver
    # a live edge (an observer, a recorder...): the lines of each generation printed before
    # it was wired, which it never gets; it numbers the rest from 1, as the SDK numbers
    # each of its edges (a receiver counts a gap as messages lost)
    before: dict[int, int] = attrs.field(factory=dict)

    def numbered(self, generation: int, seq: int, frames: list[Any]) -> list[Any]:
        """`frames` (numbered `seq` in `generation`: a line, or an end-of-stream's last
        line) as this edge numbers them."""
        skipped = self.before.get(generation, 0)
        return with_seq(frames, seq - skipped) if skipped else frames

    @property
    def sock(self) -> zmq.Socket[bytes]:  # node_sdk.flush.EdgeSocket's name for it
        return self.socket

    @property
    def link(self) -> None:  # a keeper waits for no credit at its end: no handshake watch
        return None


def connect(
    context: zmq.Context[zmq.Socket[bytes]],
    source: str,
    edge: dict[str, Any],
    curve: Curve | None,
) -> StdoutEdge | None:
    """The socket of one receiving input, connected; None, with the cause logged, for a
    tcp:// one that cannot be secured."""
    backpressure = edge.get("policy") == "backpressure"
    # a backpressure input is a ROUTER that pays credits back (node_sdk.wire)
    socket = context.socket(zmq.DEALER if backpressure else zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 500)
    socket.setsockopt(zmq.SNDHWM, SNDHWM)
    if is_tcp(edge["endpoint"]):  # another machine: CURVE as any node's edge
        if curve is None:
            log.error("%s: no machine key: edge to %s not opened", source, edge["endpoint"])
            socket.close()
            return None
        try:
            curve.client(socket, edge.get("server_key"), edge["endpoint"])
        except NodeError as exc:
            log.error("%s: %s", source, exc)
            socket.close()
            return None
    try:
        socket.connect(edge["endpoint"])
    except zmq.ZMQError as exc:  # an endpoint zmq refuses: that edge only
        log.error("%s: edge to %s not opened: %s", source, edge["endpoint"], exc)
        socket.close()
        return None
    credits = int(edge.get("queue_size") or 10) if backpressure else None
    return StdoutEdge(edge["endpoint"], socket, credits, f"{edge['node']}/{edge['input']}")


def machine_curve(source: str, keys: StdoutKeys) -> Curve | None:
    """The machine's CURVE keys for tcp:// edges (a run placed on several machines), or
    None, with the cause logged, when its key file cannot be used."""
    from node_sdk.tcp import Curve  # only a keeper sending to another machine pays for it

    security = TcpSecurity(keys.public_key, keys.secret_file, (), keys.heartbeat_ms / 1000,
                           keys.timeout_ms / 1000)  # fmt: skip
    try:
        return Curve(security)
    except NodeError as exc:
        log.error("%s: %s", source, exc)
        return None


def collect_credits(socket: zmq.Socket[bytes]) -> int:
    """Credit frames the receiver sent back since the last look."""
    total = 0
    while True:
        try:
            total += unpack_credit(socket.recv(zmq.NOBLOCK))
        except zmq.Again:
            return total
