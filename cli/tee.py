"""`flow run`'s node lines on stdout, from their own thread: a slow or gone reader stalls no run."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from rich.text import Text

QUEUE_LINES = 10_000
DRAIN_S = 2.0  # at the end, how long the lines still queued may take to be written
WAIT_S = 0.5  # a full queue waits this long once, well within the keeper's heartbeat

Write = Callable[[Text], None]


class StdoutTee:
    """Lines handed over by the run's keeper thread, printed in order by a writer thread.

    The keeper must answer its heartbeat, so handing a line over never blocks long: when
    the queue is full it waits `WAIT_S` once, then counts lines as left out (they are
    still in the node logs) until the reader has caught up by half the queue. A reader
    that left (`flow run | head`) raises SIGPIPE in the writing thread, which `flow run`
    handles as a stop; from then on lines are dropped without a word.
    """

    def __init__(self, write: Write) -> None:
        self._write = write
        self._lines: queue.Queue[Text | None] = queue.Queue(QUEUE_LINES)
        self.dropped = 0
        self.broken = False
        self._stuck = False
        self._thread = threading.Thread(target=self._serve, name="flow-stdout", daemon=True)
        self._thread.start()

    def put(self, line: Text) -> None:
        if self.broken:
            return
        if self._stuck and self._lines.qsize() < QUEUE_LINES // 2:
            self._stuck = False  # the reader caught up: wait for it again
        try:
            # a reader a little behind holds the keeper back briefly; a stuck one once
            self._lines.put(line, timeout=0 if self._stuck else WAIT_S)
        except queue.Full:
            self._stuck = True
            self.dropped += 1

    def close(self) -> bool:
        """Write what is queued (bounded by `DRAIN_S`); False when the reader is stuck."""
        try:
            self._lines.put(None, timeout=DRAIN_S)
        except queue.Full:
            return False
        self._thread.join(DRAIN_S)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        while (line := self._lines.get()) is not None:
            if self.broken:
                continue
            try:
                self._write(line)
            except (BrokenPipeError, ValueError):  # ValueError: stdout closed in-process
                self.broken = True
