"""Replies a ROUTER could not hand to libzmq yet, held per peer within byte bounds.

With ROUTER_MANDATORY and a small SNDHWM, libzmq refuses (EAGAIN) a message to a peer
whose pipe is full instead of dropping it silently, and says EHOSTUNREACH for a peer that
has left. A refused reply waits here, in order behind that peer's earlier ones, and is
tried again on a short timer that backs off per peer: a ROUTER polls writable whenever
any one peer has room, so one peer's room cannot be awaited. A peer that does not read
its replies is bounded twice: by what it may leave here (PEER_BYTES) and by what all
peers may leave together (TOTAL_BYTES). Past either, the oldest replies of the peer that
holds the most are dropped, with one log line per peer while it leaves them unread.
A reply sent in parts (`daemon.model.parts`) is kept and dropped whole; one whose first
parts libzmq already took is ended with an empty END instead, so the client stays in step.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable

import attrs

from daemon.model.parts import END, PART

log = logging.getLogger(__name__)

Frames = list[bytes]

PEER_BYTES = 4 << 20  # room for a client's 32 requests in flight with 128 KiB replies
TOTAL_BYTES = 8 << 20  # beside 16 MiB of requests in flight and 16 MiB of parts
FIRST_RETRY_S = 0.005
LAST_RETRY_S = 0.1  # a peer that reads late waits at most this long past its read


class Sent(enum.Enum):
    """What libzmq did with one message to one peer."""

    SENT = "sent"
    FULL = "full"  # the peer's pipe is at its HWM: try again later
    GONE = "gone"  # the peer has left: its replies can never be delivered


Send = Callable[[Frames], Sent]


def size_of(frames: Frames) -> int:
    return sum(len(frame) for frame in frames)


def _amount(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size} bytes"


def continues(frames: Frames) -> bool:
    """A part of a reply that more parts follow (`daemon.model.parts`)."""
    return len(frames) >= 3 and frames[-2] == PART


@attrs.define(eq=False)
class _Reply:
    """One reply's messages that libzmq has not taken: one, or its parts still to go."""

    messages: collections.deque[Frames] = attrs.field(factory=collections.deque)
    size: int = 0
    complete: bool = False  # its last message is here
    started: bool = False  # libzmq took its first parts: the rest, or an END, must follow
    cut: bool = False  # dropped after it started: only an empty END is left to send


@attrs.define(eq=False)
class _Queue:
    """One peer's replies that libzmq refused, oldest first."""

    replies: collections.deque[_Reply] = attrs.field(factory=collections.deque)
    size: int = 0
    due: float = 0.0  # when to try again
    delay: float = FIRST_RETRY_S
    warned: bool = False  # said once in the log that this peer's replies are dropped

    def droppable(self) -> bool:
        return len(self.replies) > 1 or (bool(self.replies) and not self.replies[0].cut)


@attrs.define(eq=False)
class PeerOutbox:
    """Every peer's refused replies; `offer` each outgoing message, `retry` when due."""

    name: str
    peer_bytes: int = PEER_BYTES
    total_bytes: int = TOTAL_BYTES
    held: int = 0  # bytes waiting here, for every peer together
    dropped: int = 0  # replies dropped over a bound (their peer did not read them)
    unreachable: int = 0  # replies dropped because their peer had left
    next_due: float | None = None  # the earliest retry, None when nothing waits
    _queues: dict[bytes, _Queue] = attrs.field(factory=dict)
    _open: set[bytes] = attrs.field(factory=set)  # peers libzmq took a reply's first parts of

    @property
    def queued(self) -> int:
        return sum(len(queue.replies) for queue in self._queues.values())

    def offer(self, frames: Frames, now: float, send: Send) -> int:
        """Send `frames` (a peer's id first) now or keep it; how many replies were dropped.

        The parts of one reply are offered one after the other, all in one go."""
        peer = frames[0]
        queue = self._queues.get(peer)
        if queue is None:  # nothing of this peer waits: libzmq may take it at once
            outcome = send(frames)
            if outcome is not Sent.FULL:
                if continues(frames):
                    self._open.add(peer)
                else:
                    self._open.discard(peer)
                    self.unreachable += outcome is Sent.GONE
                return 0
            queue = self._queues[peer] = _Queue(due=now + FIRST_RETRY_S)
            queue.replies.append(_Reply(started=peer in self._open))
            self._open.discard(peer)
            self._reschedule(queue.due)
        last = queue.replies[-1] if queue.replies else None
        if last is None or last.complete:
            last = _Reply()
            queue.replies.append(last)
        last.messages.append(frames)  # behind the peer's earlier replies: order is kept
        last.complete = not continues(frames)
        self._grow(queue, last, size_of(frames))
        return self._enforce(peer, queue)

    def retry(self, now: float, send: Send) -> None:
        """Try again every peer whose retry is due, oldest reply first."""
        if self.next_due is None or now < self.next_due:
            return
        for peer, queue in list(self._queues.items()):
            if queue.due <= now:
                self._retry_one(peer, queue, now, send)
        dues = [queue.due for queue in self._queues.values()]
        # one pass over every peer at most each FIRST_RETRY_S: the owner flushes after each
        # message it reads, and a flood of them must not walk a thousand queues each time
        self.next_due = max(min(dues), now + FIRST_RETRY_S) if dues else None

    def _retry_one(self, peer: bytes, queue: _Queue, now: float, send: Send) -> None:
        while queue.replies:
            head = queue.replies[0]
            while head.messages:
                outcome = send(head.messages[0])
                if outcome is Sent.FULL:
                    queue.due = now + queue.delay
                    queue.delay = min(2 * queue.delay, LAST_RETRY_S)
                    return
                if outcome is Sent.GONE:
                    self.unreachable += len(queue.replies)
                    self._forget(peer, queue)
                    return
                self._grow(queue, head, -size_of(head.messages.popleft()))
                head.started = True
            if not head.complete:
                queue.due = now + queue.delay
                return  # its next parts are not here yet
            queue.replies.popleft()
            queue.delay = FIRST_RETRY_S  # it reads: try soon again if it falls behind
        self._forget(peer, queue)

    def _enforce(self, peer: bytes, queue: _Queue) -> int:
        """Drop the oldest replies of whoever holds the most until both bounds hold."""
        dropped = 0
        while queue.size > self.peer_bytes and queue.droppable():
            dropped += self._drop_oldest(peer, queue)
        while self.held > self.total_bytes:
            candidates = [item for item in self._queues.items() if item[1].droppable()]
            if not candidates:
                break
            greediest, most = max(candidates, key=lambda item: item[1].size)
            dropped += self._drop_oldest(greediest, most)
        return dropped

    def _drop_oldest(self, peer: bytes, queue: _Queue) -> int:
        head = queue.replies[0]
        if head.cut:
            head = queue.replies[1]
        if head.started:
            # its first parts are out: an empty END takes the rest's place, so the client's
            # joiner ends that reply (it cannot decode it) and stays in step with the next
            envelope = head.messages[0][:-2] if head.messages else [peer]
            self._grow(queue, head, -head.size)
            head.messages = collections.deque([[*envelope, END, b""]])
            head.complete = head.cut = True
            self._grow(queue, head, size_of(head.messages[0]))
        else:
            queue.replies.remove(head)
            self._grow(queue, head, -head.size)
        self.dropped += 1
        if not queue.warned:
            queue.warned = True
            log.warning(
                "%s: dropping the oldest unread replies to client %r: it leaves more "
                "unread than the daemon holds (%s per client, %s in all)",
                self.name, peer[:40], _amount(self.peer_bytes), _amount(self.total_bytes),
            )  # fmt: skip
        if not queue.replies:
            self._forget(peer, queue)
        return 1

    def _grow(self, queue: _Queue, reply: _Reply, size: int) -> None:
        reply.size += size
        queue.size += size
        self.held += size

    def _forget(self, peer: bytes, queue: _Queue) -> None:
        self.held -= queue.size
        del self._queues[peer]

    def _reschedule(self, due: float) -> None:
        if self.next_due is None or due < self.next_due:
            self.next_due = due
