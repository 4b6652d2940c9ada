"""The only bridge between trio and ZeroMQ: one owner task per socket, edge-triggered FD.

ZeroMQ sockets are not thread-safe and their `FD` is edge-triggered: any operation on the
socket may consume the readiness edge. So exactly one task (`serve`) touches the socket.
Other tasks hand it outgoing messages with `send`, which queues them and interrupts the
owner's wait; the owner sends them, then reads everything readable, then waits again.

Nothing is dropped silently: a full outbox makes `send` return False to its caller (which
says what was lost), a peer that is gone is logged, and both are counted in `statistics()`
and reported through `on_drop` (the runtime shows them in `flow status`). A ROUTER with
ROUTER_MANDATORY may instead keep what libzmq refuses per peer (`peers`, a `PeerOutbox`):
the owner retries it when due and reports what its bounds drop.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio
import zmq

from daemon.model.errors import FATAL_ERRORS
from daemon.run.peer_outbox import PeerOutbox, Sent

log = logging.getLogger(__name__)

Frames = list[bytes]
Handler = Callable[[Frames], Awaitable[None] | None]

# An outbox far past this means the peer side is gone or flooding; refusing more is the
# bounded choice (the caller hears it; replies are idempotent to retry for the CLI).
MAX_OUTBOX = 10_000

OnDrop = Callable[[str, int], None]  # (socket name, messages dropped so far)


@attrs.frozen
class OwnerStatistics:
    """A snapshot of one socket's outgoing traffic."""

    queued: int
    sent: int
    dropped: int
    unreachable: int = 0  # replies held for a peer that then left (see PeerOutbox)


@attrs.define(eq=False)
class SocketOwner:
    """Owns one zmq socket inside trio; `serve` is its only user."""

    socket: zmq.Socket[bytes]
    name: str = "socket"
    on_drop: OnDrop | None = None
    peers: PeerOutbox | None = None  # a ROUTER with ROUTER_MANDATORY: refused ones wait here
    _outbox: collections.deque[Frames] = attrs.field(factory=collections.deque)
    _wait_scope: trio.CancelScope | None = None
    sent: int = 0
    dropped: int = 0

    def send(self, frames: Frames) -> bool:
        """Queue frames for the owner task; never blocks. False, counted, on a full outbox."""
        if len(self._outbox) >= MAX_OUTBOX:
            self._drop(frames, f"{MAX_OUTBOX} messages already queued")
            return False
        self._outbox.append(frames)
        if self._wait_scope is not None:
            self._wait_scope.cancel()
        return True

    def statistics(self) -> OwnerStatistics:
        if self.peers is None:
            return OwnerStatistics(queued=len(self._outbox), sent=self.sent, dropped=self.dropped)
        queued = len(self._outbox) + self.peers.queued
        unreachable = self.peers.unreachable
        return OwnerStatistics(queued, self.sent, self.dropped, unreachable=unreachable)

    def _drop(self, frames: Frames, why: str) -> None:
        self.dropped += 1
        # a flood of drops is one line per power of two, never one per message
        if self.dropped & (self.dropped - 1) == 0:
            peer = f" to {frames[0][:80]!r}" if len(frames) > 1 else ""
            log.warning("%s: dropped a message%s: %s (%d dropped so far)",
                        self.name, peer, why, self.dropped)  # fmt: skip
        if self.on_drop is not None:
            self.on_drop(self.name, self.dropped)

    def _flush(self) -> None:
        if self.peers is not None:
            self._flush_to_peers(self.peers)
            return
        while self._outbox:
            try:
                self.socket.send_multipart(self._outbox[0], flags=zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                return  # the peer's queue is full: retry after the next wake
            except zmq.ZMQError as exc:
                # EHOSTUNREACH and friends: the peer went away; this one message is lost
                self._drop(self._outbox[0], str(exc))
            self._outbox.popleft()

    def _flush_to_peers(self, peers: PeerOutbox) -> None:
        now = trio.current_time()
        while self._outbox:
            if dropped := peers.offer(self._outbox.popleft(), now, self._try_send):
                self.dropped += dropped  # PeerOutbox logged it, once per peer
                if self.on_drop is not None:
                    self.on_drop(self.name, self.dropped)
        peers.retry(now, self._try_send)

    def _try_send(self, frames: Frames) -> Sent:
        try:
            self.socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return Sent.FULL
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: a client that left before its reply, as a Ctrl-C'd `flow wait`
            log.debug("%s: a message to %r was dropped: %s", self.name, frames[0][:80], exc)
            return Sent.GONE
        self.sent += 1
        return Sent.SENT

    def _wait_s(self) -> float:
        """How long the owner may wait for its socket before it has something to retry."""
        if self._outbox:
            return 0.01
        due = None if self.peers is None else self.peers.next_due
        if due is None:
            return 0.5
        return min(0.5, max(0.001, due - trio.current_time()))

    async def serve(self, on_message: Callable[[Frames], None]) -> None:
        """Pump the socket forever; `on_message` is called for each incoming message.

        Each call is a recoverable boundary (SPEC 7.2): a message whose handling raises
        anything not on the fatal list is logged and dropped, and the socket is served on.
        """
        await self._pump(lambda: on_message(self.socket.recv_multipart(flags=zmq.NOBLOCK)))

    async def serve_frames(self, on_message: Callable[[list[zmq.Frame]], None]) -> None:
        """`serve`, handing over `zmq.Frame`s: their properties (`User-Id`, the key ZAP
        authenticated; `Peer-Address`) are what the cluster link trusts."""
        await self._pump(
            lambda: on_message(self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False))
        )

    async def _pump(self, receive_one: Callable[[], None]) -> None:
        fd = int(self.socket.getsockopt(zmq.FD))
        while True:
            self._flush()
            events = int(self.socket.getsockopt(zmq.EVENTS))
            if events & zmq.POLLIN:
                try:
                    receive_one()
                except FATAL_ERRORS:
                    raise
                except Exception:
                    log.exception("%s: dropped a message whose handling failed", self.name)
                # Let other tasks run between messages so a flood cannot starve them.
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope() as scope:
                self._wait_scope = scope
                if self._outbox and events & zmq.POLLOUT:
                    scope.cancel()
                # A timeout bounds the wait in case an edge was consumed by a send.
                with trio.move_on_after(self._wait_s()):
                    await trio.lowlevel.wait_readable(fd)
            self._wait_scope = None
