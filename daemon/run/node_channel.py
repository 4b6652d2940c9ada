"""The daemon's end of the node channel: hello, bye, and messages to nodes (docs/protocol.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
import zmq

from daemon.errors import RecoverableError
from daemon.model.node_stats import merge_report
from daemon.run.slot import NodeSlot
from daemon.run.zmq_trio import Frames, SocketOwner
from node_sdk.wire import decode_control, encode_control

log = logging.getLogger(__name__)

FindSlot = Callable[[str, str], NodeSlot | None]
Attach = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.define(eq=False)
class NodeChannel:
    """Routes node messages to their slots; refuses older generations."""

    owner: SocketOwner
    find_slot: FindSlot
    attach: Attach | None = None

    def send(self, identity: bytes, message: dict[str, Any]) -> bool:
        """Queue a message to a node; False when it could not be (the caller says so)."""
        return self.owner.send([identity, encode_control(message)])

    def on_message(self, frames: Frames) -> None:
        if len(frames) != 2:
            log.warning("node channel: dropped a message of %d frames", len(frames))
            return
        identity, payload = frames
        if identity.startswith(b"attach/"):
            self._attach(identity, payload)
            return
        try:
            run_id, node_id, generation_text = identity.decode().split("/")
            generation = int(generation_text)
            message = decode_control(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            log.warning("node channel: dropped a malformed message: %s", exc)
            return
        slot = self.find_slot(run_id, node_id)
        if slot is None:
            log.warning("node channel: message from unknown node %s of run %s", node_id, run_id)
            return
        if generation != slot.generation:
            log.warning(
                "run %s: node %s: refused %s from generation %d (current %d)",
                run_id,
                node_id,
                message.get("t"),
                generation,
                slot.generation,
            )
            return
        kind = message.get("t")
        slot.last_seen = time.monotonic()
        if kind == "hello":
            slot.hello()
        elif kind == "bye":
            slot.bye()  # a dynamic node's slot is freed with it
        elif kind == "stats":
            slot.stats = merge_report(slot.stats, message, time.monotonic())
        else:
            log.warning("run %s: node %s: unknown message %r", run_id, node_id, kind)

    def _attach(self, identity: bytes, payload: bytes) -> None:
        """A process asks to become a dynamic node: grant it or refuse it in one line."""
        try:
            request = decode_control(payload)
            if self.attach is None:
                raise RecoverableError("this daemon does not take dynamic nodes")
            reply = {"t": "attached", "config": self.attach(request)}
        except RecoverableError as exc:
            log.warning("dynamic attach refused: %s", exc)
            reply = {"t": "refused", "error": str(exc)}
        except ValueError as exc:
            log.warning("node channel: dropped a malformed attach: %s", exc)
            return
        self.send(identity, reply)


def bind_router(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
    socket.bind(endpoint)
    return socket
