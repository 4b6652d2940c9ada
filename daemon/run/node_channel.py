"""The daemon's end of the node channel: hello, bye, stats, param_ack, attach (docs/protocol.md).

Every frame goes through `node_sdk.channel.decode`, the channel's one total decoder: a
frame it refuses is dropped with one log line (an attach request is answered `refused`,
so its caller does not wait out its timeout), and the loop goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import zmq

from daemon.model.errors import RecoverableError
from daemon.model.node_stats import merge_report
from daemon.model.once import OncePerKey
from daemon.run import ipc_files
from daemon.run.slot import NodeSlot
from daemon.run.stdout_stats import with_stdout_counts
from daemon.run.zmq_trio import Frames, SocketOwner
from node_sdk import channel
from node_sdk.config import MAX_GENERATION, NodeConfig
from node_sdk.errors import NodeError
from node_sdk.log_rate import LogRate

log = logging.getLogger(__name__)

FindSlot = Callable[[str, str], NodeSlot | None]
Attach = Callable[[channel.Attach], NodeConfig]
MAX_IDENTITY = 256  # `run/node/generation` or `attach/<pid>/<hex>`
# zmq drops a peer that sends more than `channel.decode` takes (MAX_FRAME) outright; and
# holds at most RCVHWM messages a connection sent that the daemon has not read yet: a
# node sends a few a second (the rest wait in its own queue), so one that floods the
# channel costs the daemon at most RCVHWM frames of MAX_FRAME, not a thousand of 16 MiB
MAX_MSG_BYTES = channel.MAX_FRAME
RCVHWM = 16
MALFORMED_LOG_S = 10.0  # malformed frames: at most one WARNING this often
# ROUTER_MANDATORY: a message to a node whose pipe is full (a node that does not read its
# channel: stopped, or its receiver thread starved) is refused, not dropped silently, and
# waits in the channel's PeerOutbox within its byte bounds; one to a node gone is counted
OPTIONS: dict[int, int] = {
    zmq.MAXMSGSIZE: MAX_MSG_BYTES,
    zmq.RCVHWM: RCVHWM,
    zmq.ROUTER_MANDATORY: 1,
}


class NoDynamicNode(RecoverableError):
    """An attach naming a dynamic node no run of this daemon has (a member may pass it on)."""


# a member's: an attach (its identity, the request) passed on to its coordinator, which
# answers later; False when it cannot be (the local refusal stands)
AttachElsewhere = Callable[[bytes, channel.Attach], bool]


@attrs.define(eq=False)
class NodeChannel:
    """Routes node messages to their slots; refuses older generations."""

    owner: SocketOwner
    find_slot: FindSlot
    attach: Attach | None = None
    # late messages (a run or node that has ended, an older generation) come in floods:
    # one WARNING per sender, then DEBUG (fault matrix row 30, D4)
    late: OncePerKey = attrs.field(factory=OncePerKey)
    # malformed frames: any sender, any bytes (one WARNING per 10 s, with the count)
    malformed: LogRate = attrs.field(factory=lambda: LogRate(MALFORMED_LOG_S))
    # a member's: frames of the nodes it hosts for a coordinator go there (True: taken)
    relay: Callable[[str, bytes, bytes], bool] | None = None
    # parameters (daemon/run/params.py): the values a node gets between hello and `start`,
    # and where its answers to changes go
    greet: Callable[[str, NodeSlot], list[channel.Message]] | None = None
    param_acks: Callable[[str, str, channel.ParamAck], None] | None = None
    # a run's own send (by run id), which relays to a node on another machine: the values
    # `greet` gives go there, where the node is (this socket reaches only this machine's)
    route: Callable[[str], Callable[[bytes, channel.Message], bool] | None] | None = None
    attach_elsewhere: AttachElsewhere | None = None
    # a node of a run was heard from (its run resends what an adopted node missed)
    heard: Callable[[str, NodeSlot], None] | None = None

    def send(self, identity: bytes, message: channel.Message) -> bool:
        """A message to one node (typed: it encodes to what the node decodes). False when
        it was not queued."""
        return self.owner.send([identity, channel.encode(message)])

    def on_message(self, frames: Frames) -> None:
        if len(frames) != 2 or len(frames[0]) > MAX_IDENTITY:
            self._malformed(f"a message of {len(frames)} frames")
            return
        identity, payload = frames
        if identity.startswith(b"attach/"):
            self._attach(identity, payload)
            return
        try:
            message = channel.decode(payload)
            run_id, node_id, generation = _identity(identity)
        except NodeError as exc:
            self._malformed(f"a malformed message: {exc}")
            return
        if self.relay is not None and self.relay(run_id, identity, payload):
            return
        slot = self.find_slot(run_id, node_id)
        kind = type(message).__name__.lower()
        if slot is None:
            level = self.late.level(("unknown", run_id, node_id))
            log.log(level, "node channel: %s from unknown node %s of run %s (ended?)%s",
                    kind, node_id, run_id, _more(level))  # fmt: skip
            return
        if not slot.spec.connects:  # a process node never speaks here: another process
            level = self.late.level(("process", run_id, node_id))
            log.log(level, "node channel: %s in the name of process node %s of run %s "
                    "(connects: false) refused%s", kind, node_id, run_id, _more(level))  # fmt: skip
            return
        detached = slot.spec.is_dynamic and not slot.attached
        if detached or generation != slot.generation:
            # an older generation, or a dynamic one that was detached (its process froze
            # past its heartbeat): refused, and told once to stop, as a replaced node is
            level = self.late.level(("generation", run_id, node_id, generation))
            log.log(level, "run %s: node %s: refused %s from generation %d (%s)%s",
                    run_id, node_id, kind, generation,
                    "detached" if generation == slot.generation else
                    f"current {slot.generation}", _more(level))  # fmt: skip
            if level == logging.WARNING:
                self.send(identity, channel.Stop())
            return
        slot.last_seen = time.monotonic()
        if self.heard is not None:
            self.heard(run_id, slot)
        if isinstance(message, channel.Hello):
            send = (self.route(run_id) if self.route is not None else None) or self.send
            for param in self.greet(run_id, slot) if self.greet is not None else ():
                send(identity, param)  # before `start`, which hello may send at once
            slot.hello()
        elif isinstance(message, channel.Bye):
            slot.bye()  # a dynamic node's slot is freed with it
        elif isinstance(message, channel.Stats):
            now = time.monotonic()
            slot.stats = merge_report(slot.stats, with_stdout_counts(slot, message), now)
            slot.active_at = now - message.away_ms / 1000
        elif isinstance(message, channel.ParamAck) and self.param_acks is not None:
            self.param_acks(run_id, node_id, message)
        else:
            log.warning("run %s: node %s: unexpected message %r", run_id, node_id, kind)

    def _malformed(self, what: str) -> None:
        count = self.malformed.tick()
        since = f" ({count - 1} more since the last said)" if count > 1 else ""
        log.log(logging.WARNING if count else logging.DEBUG, "node channel: dropped %s%s",
                what, since)  # fmt: skip

    def _attach(self, identity: bytes, payload: bytes) -> None:
        """A process asks to become a dynamic node: grant it or refuse it in one line."""
        reply: channel.Message
        try:
            request = channel.decode(payload)
            if not isinstance(request, channel.Attach):
                raise NodeError(f"expected attach, got {type(request).__name__.lower()}")
            if self.attach is None:
                raise RecoverableError("this daemon does not take dynamic nodes")
            try:
                reply = channel.Attached(self.attach(request))
            except NoDynamicNode:
                if self.attach_elsewhere is not None and self.attach_elsewhere(identity, request):
                    return  # its answer comes from the coordinator
                raise
        except RecoverableError as exc:
            log.warning("dynamic attach refused: %s", exc)
            reply = channel.Refused(str(exc))
        except NodeError as exc:
            self._malformed(f"a malformed attach: {exc}")
            reply = channel.Refused(f"malformed attach request: {exc}")
        self.send(identity, reply)


def _more(level: int) -> str:
    return "; more like it at debug level" if level == logging.WARNING else ""


def _identity(identity: bytes) -> tuple[str, str, int]:
    """`run/node/generation` -> its parts; NodeError when it is not that."""
    try:
        run_id, node_id, generation_text = identity.decode().split("/")
    except (UnicodeDecodeError, ValueError):
        raise NodeError(f"bad node identity {identity[:60]!r}") from None
    if not (generation_text.isascii() and generation_text.isdigit()) or len(generation_text) > 10:
        raise NodeError(f"bad generation in node identity {identity[:60]!r}")
    generation = int(generation_text)
    if generation > MAX_GENERATION:
        raise NodeError(f"generation {generation} out of range")
    return run_id, node_id, generation


def bind_router(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, options: dict[int, int] | None = None
) -> zmq.Socket[bytes]:
    """A bound ROUTER; an `ipc://` path held by a live process is refused. `options` are set
    before the bind, because a listener copies the socket's options when it is bound
    (MAXMSGSIZE or an HWM set later never applies to the connections it accepts)."""
    if endpoint.startswith("ipc://"):
        ipc_files.claim(Path(endpoint.removeprefix("ipc://")))
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
    # a second wall behind the 0700 folder: the kernel's peer uid, checked by libzmq
    socket.setsockopt(zmq.IPC_FILTER_UID, os.getuid())
    for option, value in (options or {}).items():
        socket.setsockopt(option, value)
    socket.bind(endpoint)
    return socket
