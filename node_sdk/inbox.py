"""The node's input queues, filled by the inputs' owner (inputs.py), emptied by the node's
thread (ownership.py); the credit counts of backpressure inputs.

One bounded queue per input; events leave in global arrival order across inputs. That
order is a deque of tickets (an input id per message, or a ready-made control event); a
message dropped from the head of its queue leaves its ticket behind, counted in the
input's `stale`, and the first `stale` tickets of that input met later are skipped (they
are exactly the oldest ones, which are the dropped ones).

A `backpressure` input never holds zmq back (a throttled zmq receiver loses what is in
flight when its sender disconnects); its senders send only against credits instead, and
popping a message owes its sender one credit, which the inputs' owner pays back (the
protocol is written down in ownership.py).

An input with a timeout (dora's `input_timeout`) that has heard from its sources and then
stays silent longer than it is closed for a while: INPUT_CLOSED, yet it still counts as
open (no ALL_INPUTS_CLOSED for it); its next message comes after an INPUT_RECOVERED. The
receiver thread calls `expire` when `next_deadline` is due.

A queued shared-memory payload that will never be read (dropped, refused, or left at
close) is handed to `discard`, which the node gives the inbox (`leases.ShmReader.discard`):
its segment goes back to the sender's pool.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from node_sdk.config import DataInput
from node_sdk.events import Event, EventType, StopCause
from node_sdk.wire import KIND_EOS, KIND_SHM

# One received data frame: (source, generation, seq, timestamp ns, kind, extra, payload,
# routing id of the sender's DEALER on a backpressure input, else None)
Frame = tuple[str | None, int, int, int, int, dict[str, Any], Any, bytes | None]
# What the node turns into an event: (seq, timestamp ns, kind, extra, payload)
Item = tuple[int, int, int, dict[str, Any], Any]
# Credits to pay back: (input id, routing id, count)
Credit = tuple[str, bytes, int]
# a backstopped source closes once its input is read empty, or this long after the backstop
# at the latest: a socket that a live peer keeps busy never reads empty
BACKSTOP_MAX_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class InputStatistics:
    """A snapshot of one input: frames that arrived, frames lost, messages waiting."""

    received: int
    dropped: int
    queued: int
    refused: int  # from an older generation of a source, repeated, or undecodable


class _Source:
    __slots__ = ("close_at", "closed", "ended", "generation", "last_seq")

    def __init__(self) -> None:
        self.generation = 0
        self.last_seq = 0
        self.closed = False
        self.ended = 0  # the latest generation whose end-of-stream ended only itself
        self.close_at = 0  # the daemon said this generation was the source's last


class _Input:
    __slots__ = (
        "backpressure",
        "batch",
        "broken",
        "closed",
        "dropped",
        "heard_at",
        "id",
        "owed",
        "queue",
        "received",
        "refused",
        "routes",
        "size",
        "sources",
        "stale",
        "timeout",
    )

    def __init__(self, spec: DataInput) -> None:
        self.id = spec.id
        self.size = spec.queue_size
        self.backpressure = spec.policy == "backpressure"
        self.queue: deque[Item] = deque()
        self.routes: deque[bytes | None] = deque()  # the sender of each queued item
        self.owed: dict[bytes, int] = {}
        self.batch = max(1, self.size // 2)  # credits go back in batches, or when idle
        self.stale = 0
        self.received = 0
        self.dropped = 0
        self.refused = 0
        self.closed = False
        self.sources = {source: _Source() for source in spec.sources}
        self.timeout = spec.timeout_s  # 0: none
        self.heard_at = 0.0  # monotonic time of its last message; 0: not armed yet
        self.broken = False  # closed by its timeout until a message comes again


class Inbox:
    """Thread-safe: the receiver thread pushes, the node's own thread pops."""

    def __init__(
        self, inputs: Iterable[DataInput], discard: Callable[[Any], None], *, resumed: bool = False
    ) -> None:
        self._discard = discard
        # a restarted node: each source's first message sets where its numbering stands, so
        # what it sent to an earlier generation of this node is not counted as dropped
        self._resumed = resumed
        self.restart_requested = False  # the daemon's `stop` was for a restart
        # no condition to wait on: the node's thread waits in zmq poll (see node.py), and
        # the receiver thread wakes it through their PAIR. The lock: both threads push
        # (whichever owns the inputs) and the node's thread pops; held for one batch only.
        self._lock = threading.Lock()
        self._tickets: deque[str | Event] = deque()
        self._inputs = {spec.id: _Input(spec) for spec in inputs}
        self._open = sum(1 for i in self._inputs.values() if i.sources)
        self._timed = [i for i in self._inputs.values() if i.timeout]
        # a node that starts without data inputs (timers only) runs until stopped, even
        # when inputs connected to it live are closed again
        self._stops_when_closed = self._open > 0
        self._stop_queued = False
        # (input, source, when it closes even if never read empty: another peer keeps the
        # socket busy) whose end-of-stream is awaited and which the daemon's backstop closes
        # once the input's socket is read empty; the inputs' owner drains every socket while
        # there are any (inputs.py), so read without the lock
        self.backstops: list[tuple[str, str, float]] = []
        # credits were asked of the inputs' owner and are not taken yet (read without the
        # lock by the node's thread, which settles them when it gets the inputs back)
        self.credit_asked = False

    # ------------------------------------------------------------ receiver thread side

    def push(self, input_id: str, frames: Iterable[Frame]) -> None:
        """Queue data frames (and end-of-stream) of one input."""
        with self._lock:
            state = self._inputs[input_id]
            last: tuple[str | None, _Source] | None = None  # a batch mostly has one source
            for source, generation, seq, stamp, kind, extra, payload, route in frames:
                if last is not None and last[0] == source:
                    src = last[1]
                else:
                    src = self._source(state, source)
                    last = (source, src)
                if src.closed or generation < src.generation:
                    state.refused += 1  # closed for good, or an older generation
                    if kind == KIND_SHM:
                        self._discard(payload)
                    continue
                if generation > src.generation:
                    first = src.generation == 0 and self._resumed
                    src.generation = generation  # a restarted sender counts from 1 again
                    src.last_seq = (seq if kind == KIND_EOS else seq - 1) if first else 0
                if kind == KIND_EOS:
                    state.dropped += max(seq - src.last_seq, 0)
                    src.last_seq = max(seq, src.last_seq)
                    if not extra.get("ge"):
                        self._close(state, src)  # the stream ends
                    elif generation >= src.close_at > 0:
                        self._close(state, src)  # its last generation ends
                    else:
                        src.ended = generation  # a restart follows: the input stays open
                    continue
                if seq <= src.last_seq:
                    state.refused += 1  # a repeat: never deliver twice
                    if kind == KIND_SHM:
                        self._discard(payload)
                    continue
                state.dropped += seq - src.last_seq - 1  # a gap is a drop upstream
                src.last_seq = seq
                state.received += 1
                if state.timeout:
                    self._heard(state)
                state.queue.append((seq, stamp, kind, extra, payload))
                self._tickets.append(input_id)
                if state.backpressure:
                    state.routes.append(route)  # bounded by the senders' credits
                elif len(state.queue) > state.size:
                    dropped = state.queue.popleft()
                    if dropped[2] == KIND_SHM:
                        self._discard(dropped[4])  # its segment goes back to the sender's pool
                    state.stale += 1
                    state.dropped += 1

    def at_rest(self, input_id: str, source: str) -> bool:
        """Whether `source` has nothing more on its way: its stream is closed, or its
        latest generation ended only itself (a restart or a new attach may follow) and no
        later one has sent since."""
        state = self._inputs.get(input_id)
        src = state.sources.get(source) if state is not None else None
        return src is not None and (src.closed or src.ended >= src.generation > 0)

    def _heard(self, state: _Input) -> None:
        state.heard_at = time.monotonic()
        if state.broken:
            state.broken = False
            self._tickets.append(Event(EventType.INPUT_RECOVERED, id=state.id))

    def next_deadline(self) -> float | None:
        """When the first armed timed input goes silent too long; None: no such input."""
        if not self._timed:
            return None
        with self._lock:
            due = [i.heard_at + i.timeout for i in self._timed
                   if i.heard_at and not i.broken and not i.closed]  # fmt: skip
        return min(due) if due else None

    def expire(self, now: float) -> bool:
        """Close (for a while) each timed input silent for longer than its timeout."""
        fired = False
        with self._lock:
            for state in self._timed:
                armed = state.heard_at and not state.broken and not state.closed
                if armed and now - state.heard_at >= state.timeout:
                    state.broken = fired = True
                    self._tickets.append(Event(EventType.INPUT_CLOSED, id=state.id))
        return fired

    def close_source(self, input_id: str, source: str, generation: int = 0) -> None:
        """The daemon says a source is done: at once (`generation` 0: its sender died
        without end-of-stream), or once that last generation's end-of-stream is in.

        A `generation` 0 for a source whose end-of-stream is still awaited is the daemon's
        backstop for an end-of-stream that was lost (supervisor.py): the sender has exited,
        so whatever it delivered is already in this node's input socket, possibly seconds
        of it for a receiver that is behind. The source closes once the socket is read
        empty (`settle`), after every message it sent, or BACKSTOP_MAX_S later if another
        peer keeps that socket busy."""
        with self._lock:
            state = self._inputs.get(input_id)
            if state is None:
                return
            src = self._source(state, source)
            if generation and src.ended < generation:
                src.close_at = generation
            elif src.close_at > src.ended and not src.closed:
                if not any(b[:2] == (input_id, source) for b in self.backstops):
                    deadline = time.monotonic() + BACKSTOP_MAX_S
                    self.backstops = [*self.backstops, (input_id, source, deadline)]
            else:
                self._close(state, src)

    @property
    def backstop_deadline(self) -> float:
        """The first of the backstops' deadlines (0: none). Read without the lock: the list
        is replaced whole, never changed in place."""
        return min((b[2] for b in self.backstops), default=0.0)

    def settle(self, input_id: str, *, read_empty: bool = True) -> bool:
        """Close the backstopped sources of an input whose socket was just read empty, or
        (`read_empty` False) those past their deadline; what they sent is queued before
        their INPUT_CLOSED. True if any closed."""
        with self._lock:
            now = time.monotonic()
            settled = [b for b in self.backstops
                       if b[0] == input_id and (read_empty or b[2] <= now)]  # fmt: skip
            if not settled:
                return False
            self.backstops = [b for b in self.backstops if b not in settled]
            state = self._inputs[input_id]
            for _, source, _ in settled:
                self._close(state, state.sources[source])
            return True

    def add_input(self, spec: DataInput) -> None:
        """A live `add_input`: a new input, or more sources for one that exists.

        A source added to a closed input is closed at once: INPUT_CLOSED is final.
        """
        with self._lock:
            state = self._inputs.get(spec.id)
            if state is None:
                state = self._inputs[spec.id] = _Input(dataclasses.replace(spec, sources=()))
                if state.timeout:
                    self._timed.append(state)
            for source in spec.sources:
                self._source(state, source)  # counts the input open from its first source

    def push_stop(self, cause: StopCause) -> None:
        """Queue one STOP (the first cause wins)."""
        with self._lock:
            self._queue_stop(cause)

    def push_error(self, message: str) -> None:
        """Queue an ERROR event then STOP: the receiver cannot go on."""
        with self._lock:
            self._tickets.append(Event(EventType.ERROR, error=message))
            self._queue_stop(StopCause.STOP_REQUESTED)

    def push_event(self, event: Event) -> None:
        """Queue one event from the daemon (a PARAM), in arrival order with the data."""
        with self._lock:
            self._tickets.append(event)

    def _source(self, state: _Input, source: str | None) -> _Source:
        if source is None:
            # a sender that did not name itself: the input's only source
            source = next(iter(state.sources), "") if len(state.sources) == 1 else ""
        src = state.sources.get(source)
        if src is None:
            if not state.sources and not state.closed:
                self._open += 1  # an input is open from its first source on, however late
            src = state.sources[source] = _Source()
            if state.closed:
                src.closed = True
        return src

    def _close(self, state: _Input, src: _Source) -> None:
        if src.closed:
            return
        src.closed = True
        if state.closed or not all(s.closed for s in state.sources.values()):
            return
        state.closed = True
        if not state.broken:  # a timed-out input told its INPUT_CLOSED already
            self._tickets.append(Event(EventType.INPUT_CLOSED, id=state.id))
        self._open -= 1
        if self._open == 0 and self._stops_when_closed:
            self._queue_stop(StopCause.ALL_INPUTS_CLOSED)

    def _queue_stop(self, cause: StopCause) -> None:
        if not self._stop_queued:
            self._stop_queued = True
            self._tickets.append(Event(EventType.STOP, id=cause))

    def discard_queued(self) -> None:
        """Release the shared-memory payloads still queued (the node is closing)."""
        with self._lock:
            for state in self._inputs.values():
                for item in state.queue:
                    if item[2] == KIND_SHM:
                        self._discard(item[4])

    # ------------------------------------------------------------ node thread side

    def pop(self) -> tuple[Event | tuple[str, Item] | None, bool]:
        """The next event or (input id, item), and whether credits are due to senders."""
        with self._lock:
            tickets = self._tickets
            while tickets:
                ticket = tickets.popleft()
                if type(ticket) is not str:
                    return ticket, False  # type: ignore[return-value]
                state = self._inputs[ticket]
                if state.stale:
                    state.stale -= 1
                    continue
                item = state.queue.popleft()
                if state.backpressure:
                    route = state.routes.popleft()
                    if route is not None:
                        owed = state.owed[route] = state.owed.get(route, 0) + 1
                        # pay back in batches, and always before the node may go idle;
                        # one request to the receiver thread until it has taken them
                        due = not self.credit_asked and (owed >= state.batch or not state.queue)
                        self.credit_asked |= due
                        return (ticket, item), due
                return (ticket, item), False
            return None, False

    def take_credits(self) -> list[Credit]:
        """Every credit owed now (the receiver thread sends them), reset to zero."""
        with self._lock:
            self.credit_asked = False
            due: list[Credit] = []
            for state in self._inputs.values():
                if state.owed:
                    due.extend((state.id, route, n) for route, n in state.owed.items())
                    state.owed.clear()
            return due

    def refuse(self, input_id: str) -> None:
        """Count one message of `input_id` that was taken but could not be decoded: refused,
        no longer received (delivered + dropped stays what its senders sent)."""
        with self._lock:
            state = self._inputs[input_id]
            state.refused += 1
            state.received -= 1

    def statistics(self) -> dict[str, InputStatistics]:
        with self._lock:
            return {
                i.id: InputStatistics(i.received, i.dropped, len(i.queue), i.refused)
                for i in self._inputs.values()
            }
