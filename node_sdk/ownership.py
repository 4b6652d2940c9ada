"""Who reads a node's input sockets, and who pays backpressure credits: the two threads' protocol.

The invariant, kept by everything below and by receiver.py:

    At every instant exactly one thread owns the input sockets (`Ownership.owner`), and
    only that thread reads them or sends credits on them. `owner` changes only under
    `Ownership.lock`, and only in two ways:
      MAIN -> RECEIVER (`take`, takeover): when the node's thread is outside `next()` and
        has not come back to it since the receiver thread last looked (`inside` is False,
        `exits` unchanged): user code kept it away for a whole check interval. `enter`
        reads the owner under the same lock, so a node thread coming back sees the change.
      RECEIVER -> MAIN (`give_back`): only after the node's thread asked with GIVE; it then
        waits in `next()` polling the PAIR alone, and the receiver thread stops polling the
        inputs before it flips the owner and answers HANDED.
    Every credit owed is paid once, by the owner, within one hand-off: popping a message
    of a backpressure input owes its sender a credit (counted in the inbox, under its
    lock); the node's thread pays at once when it owns the sockets, else asks the
    receiver with CREDIT (once: `Inbox.credit_asked` stays set until someone takes the
    credits, and taking them resets the counts under the inbox lock, so none is paid
    twice). A CREDIT that reaches the receiver after it gave the sockets back is paid by
    the node's thread when it finds `credit_asked` set as the new owner; one asked just
    before a takeover is paid by the receiver as it takes over.

Why two threads at all: a message goes from the socket to the caller of `next()` with no
thread hand-off while the node's thread waits there (most of what latency costs in Python),
and the receiver thread keeps draining while user code is busy elsewhere, so drop_oldest
keeps the newest messages and zmq never holds more than a check interval's traffic.

The receive path has three locks, each held for a few lines and never two at once:
`Ownership.lock` (the hand-off above: `enter` and `take` must each read and write
`owner`/`inside` atomically, or both threads could own the sockets), `Inbox._lock` (both
threads push, the node's thread pops; one batch per hold), and `Releases._lock` in
leases.py (taken only without waiting, so a lease's `__del__`, which runs in any thread
at any moment, never blocks; it only keeps two threads from flushing on the same
sockets). The shared-memory mapping cache needs none: only the node's thread opens
payloads. `Inputs` needs none: only the owner reads the sockets, and a live `add_input`
replaces its maps whole.

`Events` is the node thread's half: it turns the inbox, timers and sockets into events.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

import zmq

from node_sdk.errors import NodeError
from node_sdk.events import Event, EventType
from node_sdk.inbox import Inbox, Item
from node_sdk.inputs import Inputs
from node_sdk.latency import Traffic
from node_sdk.leases import Releases, ShmReader
from node_sdk.log_rate import LogRate
from node_sdk.params import Params
from node_sdk.timers import Timers
from node_sdk.wire import KIND_BYTES, KIND_NONE, KIND_SHM, decode_payload

MAIN: Final = 0  # the node's own thread owns the input sockets
RECEIVER: Final = 1  # the receiver thread does

# Commands on the PAIR between the threads, first byte. To the receiver thread: credit (pay
# what the inbox owes), send (the rest of the frame goes to the daemon), give (hand the
# inputs back), quit. To the node's thread: wake (look at the inbox again), handed.
CREDIT: Final = b"c"
SEND: Final = b"s"
GIVE: Final = b"g"
QUIT: Final = b"q"
WAKE: Final = b"w"
HANDED: Final = b"h"

_new_event = tuple.__new__  # the hot path builds events without the keyword layer
_INPUT: Final = EventType.INPUT
MAX_POLL_S: Final = 86_400.0  # one day: what one zmq_poll of a long wait waits at most
UNDECODABLE_LOG_S: Final = 10.0  # at most one log line per this long for undecodable payloads

log = logging.getLogger(__name__)


class Ownership:
    """The owner of the input sockets and what the receiver thread knows of the node's."""

    __slots__ = ("asked", "exits", "inside", "lock", "owner")

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the only guard of `owner` (see the invariant)
        self.owner = MAIN
        self.inside = False  # the node's thread is inside next()
        self.exits = 0  # returns from next(): the receiver's evidence that the node moves on
        self.asked = False  # the node's thread has sent GIVE and waits for the sockets

    def enter(self) -> bool:
        """The node's thread enters `next()`: True when it owns the sockets."""
        with self.lock:
            self.inside = True
            mine = self.owner == MAIN
            if mine:
                self.asked = False
            return mine

    def leave(self) -> None:
        """The node's thread returns from `next()` (plain writes: `take` reads them locked,
        and a stale read only delays a takeover by one interval)."""
        self.inside = False
        self.exits += 1

    def owned_by_main(self) -> bool:
        with self.lock:
            return self.owner == MAIN

    def take(self, seen_exits: int) -> bool:
        """The receiver thread takes the sockets if the node's thread stayed away since."""
        with self.lock:
            if self.owner == MAIN and not self.inside and self.exits == seen_exits:
                self.owner = RECEIVER
                self.asked = False  # a new takeover: the node's thread must ask again
                return True
            return False

    def give_back(self) -> None:
        """The receiver thread hands the sockets back (the node's thread asked)."""
        with self.lock:
            self.owner = MAIN


class Events:
    """The node thread's half: the next event from timers, the inbox or the sockets."""

    def __init__(
        self,
        inbox: Inbox,
        inputs: Inputs,
        ownership: Ownership,
        timers: Timers,
        commands: zmq.Socket[Any],
        shm: ShmReader,
    ) -> None:
        self.inbox, self.inputs, self.ownership = inbox, inputs, ownership
        self.timers = timers
        self.has_timers = False  # set once the timers are started
        self.commands = commands  # the node thread's end of the PAIR
        self.shm = shm
        self.releases: Releases = shm.releases
        self.ended = False
        self.params = Params()  # the node's own, set by the node once it exists
        self.traffic = Traffic()  # read by the stats report
        self.pending: deque[Event] = deque()
        # zmq_poll items: the PAIR and the inputs (rebuilt when their version changes), or
        # the PAIR alone, for a word from the receiver thread
        self._poll_version = -1
        self._poll_owned: list[tuple[Any, int]] = []
        self._poll_waiting: list[tuple[Any, int]] = [(commands, zmq.POLLIN)]
        self._undecodable = LogRate(UNDECODABLE_LOG_S)  # payloads dropped, logged seldom

    def tell(self, command: bytes) -> None:
        """A command to the receiver thread; never blocks, which a PAIR whose peer has gone
        (a receiver thread that failed) would do."""
        with contextlib.suppress(zmq.ZMQError):
            self.commands.send(command, zmq.NOBLOCK)

    def iterate(self) -> Iterator[Event]:
        while (event := self.next(None)) is not None:
            yield event

    def next(self, timeout: float | None) -> Event | None:
        if timeout is not None:
            timeout = _seconds(timeout)
        if self.ended:
            return None
        if self.params.handling is not None:
            self.params.settle()  # the caller handled its PARAM event: taken
        ownership = self.ownership
        owned = ownership.enter()
        if not owned and not ownership.asked:
            ownership.asked = True  # user code kept us away: the receiver thread has them
            self.tell(GIVE)
        try:
            return self._wait(timeout, owned)
        finally:
            ownership.leave()

    def _wait(self, timeout: float | None, owned: bool) -> Event | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox, timers, pending, inputs = self.inbox, self.timers, self.pending, self.inputs
        if owned and inbox.credit_asked:
            inputs.pay_credits()  # asked of the receiver thread, which gave the inputs back
        has_timers = self.has_timers
        drained = False  # frames came in this call: the deadline is looked at after them
        while True:
            if has_timers:
                due = timers.due()
                if due:
                    tick = {"timestamp": time.time_ns()}  # like a sent message's, one per batch
                    pending.extend(Event(EventType.INPUT, t, None, dict(tick)) for t in due)
            if pending:
                return pending.popleft()
            entry, credit_due = inbox.pop()
            if entry is not None:
                if credit_due:
                    if owned:
                        inputs.pay_credits()
                    else:
                        self.tell(CREDIT)
                if type(entry) is tuple:
                    try:
                        return self.input_event(*entry)
                    except NodeError as exc:
                        self._drop_undecodable(entry[0], entry[1][3].get("s"), exc)
                        if deadline is not None and time.monotonic() >= deadline:
                            return None  # a flood of them never holds the caller longer
                        continue
                assert isinstance(entry, Event)
                if entry.type is EventType.PARAM:
                    entry = self.params.take(entry)
                    if entry is None:
                        continue  # refused by the validator, or too late to apply
                elif entry.type is EventType.STOP:
                    self.ended = True
                self.releases.flush()  # a stream ended: its sender may be closing its pool
                return entry
            if drained and deadline is not None and time.monotonic() >= deadline:
                return None  # what came was all refused (repeats, a flood): the timeout holds
            if owned and inputs.drain_all():
                drained = True
                continue
            self.releases.flush()  # before idling: what was let go of goes out
            self.shm.sweep()
            wait = timers.seconds_to_next()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = left if wait is None else min(wait, left)
            if self._idle(wait, owned) and not owned and self.ownership.owned_by_main():
                owned = True  # handed back: whatever the receiver thread owed is paid here
                inputs.pay_credits()

    def _idle(self, seconds: float | None, owned: bool) -> bool:
        """Wait for input (on the sockets themselves when we own them) or a word from the
        receiver thread, at most `seconds`; True when that thread said something."""
        if owned:
            inputs = self.inputs
            if self._poll_version != inputs.version:
                self._poll_owned = [(self.commands, zmq.POLLIN)]
                self._poll_owned += [(sock, zmq.POLLIN) for sock in inputs.sockets]
                self._poll_version = inputs.version
            items = self._poll_owned
        else:
            items = self._poll_waiting
        # a longer wait (a timeout of years) is several polls: zmq_poll takes a C long
        timeout_ms = -1 if seconds is None else math.ceil(min(seconds, MAX_POLL_S) * 1000)
        commands = self.commands
        said = False
        # zmq_poll itself: zmq.Poller rebuilds its item list and result list on every call
        for sock, events in zmq.zmq_poll(items, timeout_ms):
            if not events:
                continue
            if sock is commands:
                with contextlib.suppress(zmq.Again):
                    while True:
                        commands.recv(zmq.NOBLOCK)  # wake or handed: only to look again
                said = True
            else:
                # one message: it is there, so no Again; the caller's drain takes the rest
                self.inputs.drain_socket(sock, 1)
        return said

    def _drop_undecodable(self, input_id: str, source: str | None, exc: NodeError) -> None:
        """A message whose payload does not decode (a peer's bug, or a hostile one): refused
        and counted on its input, logged at most once per UNDECODABLE_LOG_S, never raised
        into the node's loop: one bad message must not end a node."""
        self.inbox.refuse(input_id)
        count = self._undecodable.tick()
        if count:
            # the source the last one named (a hostile peer may name any): where to look
            log.warning("input %r: dropped %d message(s) that cannot be decoded, the last "
                        "from %r: %s", input_id, count, source, exc)  # fmt: skip

    def input_event(self, input_id: str, item: Item) -> Event:
        seq, stamp, kind, extra, payload = item
        if kind == KIND_BYTES:
            # a packed payload is a read-only view of the frame's bytes already
            value: Any = payload if type(payload) is memoryview else memoryview(payload)
            if not value.readonly:
                value = value.toreadonly()
        elif kind == KIND_NONE:
            value = None
        elif kind == KIND_SHM:
            value = self.shm.open_payload(payload, extra, decode_payload)
        else:
            value = decode_payload(kind, payload, extra)
        metadata = {"timestamp": stamp}
        user = extra.get("m")
        if user:
            if type(user) is not dict:  # a peer's bug, or a hostile one: refused (`_wait`)
                raise NodeError(f"metadata that is not a JSON object: {type(user).__name__}")
            metadata.update(user)  # a user's own `timestamp` key wins: user keys are kept
        # delivered: counted with its bytes and latency once it decoded (one that does not
        # is `refused` instead, never both)
        self.traffic.note(input_id, stamp, kind, payload)
        return _new_event(Event, (_INPUT, input_id, value, metadata, None, seq))


def _seconds(timeout: object) -> float | None:
    """`next(timeout=...)` as seconds to wait (None: as long as it takes), or a NodeError
    for what is no duration (a str, NaN) rather than an error from deep in the wait."""
    if type(timeout) is int:  # an int past any float: as long as it takes, or not at all
        return float(timeout) if abs(timeout) < 1 << 60 else (None if timeout > 0 else 0.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or math.isnan(timeout):
        raise NodeError(f"next(timeout=...): expected seconds (a number) or None, got "
                        f"{type(timeout).__name__} {timeout!r:.40}")  # fmt: skip
    return None if timeout == math.inf else float(timeout)
