"""The only bridge between trio and ZeroMQ: one owner task per socket, edge-triggered FD.

ZeroMQ sockets are not thread-safe and their `FD` is edge-triggered: any operation on the
socket may consume the readiness edge. So exactly one task (`serve`) touches the socket.
Other tasks hand it outgoing messages with `send`, which queues them and interrupts the
owner's wait; the owner sends them, then reads everything readable, then waits again.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio
import zmq

log = logging.getLogger(__name__)

Frames = list[bytes]
Handler = Callable[[Frames], Awaitable[None] | None]

# An outbox far past this means the peer side is gone or flooding; dropping is the
# bounded choice (replies are idempotent to retry for the CLI).
MAX_OUTBOX = 10_000


@attrs.define(eq=False)
class SocketOwner:
    """Owns one zmq socket inside trio; `serve` is its only user."""

    socket: zmq.Socket[bytes]
    _outbox: collections.deque[Frames] = attrs.field(factory=collections.deque)
    _wait_scope: trio.CancelScope | None = None
    dropped: int = 0

    def send(self, frames: Frames) -> None:
        """Queue frames for the owner task; never blocks, never raises on a full queue."""
        if len(self._outbox) >= MAX_OUTBOX:
            self.dropped += 1
            return
        self._outbox.append(frames)
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _flush(self) -> None:
        while self._outbox:
            try:
                self.socket.send_multipart(self._outbox[0], flags=zmq.NOBLOCK)
            except zmq.Again:
                return  # the peer's queue is full: retry after the next wake
            except zmq.ZMQError as exc:
                # EHOSTUNREACH and friends: the peer went away; drop this one message.
                self.dropped += 1
                log.debug("dropped an outgoing message: %s", exc)
            self._outbox.popleft()

    async def serve(self, on_message: Callable[[Frames], None]) -> None:
        """Pump the socket forever; `on_message` is called for each incoming message."""
        fd = int(self.socket.getsockopt(zmq.FD))
        while True:
            self._flush()
            events = int(self.socket.getsockopt(zmq.EVENTS))
            if events & zmq.POLLIN:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
                on_message(frames)
                # Let other tasks run between messages so a flood cannot starve them.
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope() as scope:
                self._wait_scope = scope
                if self._outbox and events & zmq.POLLOUT:
                    scope.cancel()
                # A timeout bounds the wait in case an edge was consumed by a send.
                with trio.move_on_after(0.5 if not self._outbox else 0.01):
                    await trio.lowlevel.wait_readable(fd)
            self._wait_scope = None
