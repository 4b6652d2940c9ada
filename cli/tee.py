"""`flow run`'s node lines on stdout, from their own thread: a slow or gone reader stalls no run."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

QUEUE_LINES = 10_000
BATCH_LINES = 2_000  # the most the writer takes at once: one write (and flush) for them all
DRAIN_S = 2.0  # at the end, how long the lines still queued may take to be written
WAIT_S = 0.5  # a full queue waits this long once, well within the keeper's heartbeat

Item = TypeVar("Item")


class StdoutTee(Generic[Item]):
    """Lines handed over by the run's keeper thread, written in order by a writer thread,
    as many at a time as have come (`write` gets each batch), so a line costs the keeper
    an append and the writer its share of one write, not a write and a flush.

    The keeper must answer its heartbeat, so handing a line over never blocks long: when
    the queue is full it waits `WAIT_S` once, then counts lines as left out (they are
    still in the node logs) until the reader has caught up by half the queue. A reader
    that left (`flow run | head`) raises SIGPIPE in the writing thread, which `flow run`
    handles as a stop; from then on lines are dropped without a word.
    """

    def __init__(self, write: Callable[[Sequence[Item]], None]) -> None:
        self._write = write
        self._lines: collections.deque[Item] = collections.deque()
        self._ready = threading.Condition()  # lines came, or room did, or the end
        self._closed = False
        self.dropped = 0
        self.broken = False
        self._stuck = False
        self._thread = threading.Thread(target=self._serve, name="flow-stdout", daemon=True)
        self._thread.start()

    def put(self, line: Item) -> None:
        with self._ready:
            if self.broken:
                return
            if self._stuck and len(self._lines) < QUEUE_LINES // 2:
                self._stuck = False  # the reader caught up: wait for it again
            # a reader a little behind holds the keeper back briefly; a stuck one once
            if len(self._lines) >= QUEUE_LINES and (
                self._stuck
                or not self._ready.wait_for(lambda: len(self._lines) < QUEUE_LINES, WAIT_S)
            ):
                self._stuck = True
                self.dropped += 1
                return
            self._lines.append(line)
            if len(self._lines) == 1:  # the writer may be waiting for it
                self._ready.notify_all()

    def close(self) -> bool:
        """Write what is queued (bounded by `DRAIN_S`); False when the reader is stuck."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._thread.join(DRAIN_S)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._lines or self._closed)
                if not self._lines:
                    return
                count = min(len(self._lines), BATCH_LINES)
                batch = [self._lines.popleft() for _ in range(count)]
                self._ready.notify_all()  # room for a keeper waiting on a full queue
            if self.broken:
                continue
            try:
                self._write(batch)
            # ValueError: stdout closed in-process; EIO: its terminal closed (SIGHUP)
            except (OSError, ValueError):
                self.broken = True
