"""At most one log line per interval for an event that may come in a flood, with the count
of those the line stands for (a hostile peer's frames: a node's undecodable payloads, the
daemon's malformed node-channel frames)."""

from __future__ import annotations

import time


class LogRate:
    """Counts occurrences; says when a line is due and how many it stands for."""

    __slots__ = ("_count", "_next", "interval_s")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0  # the first occurrence is said at once
        self._count = 0

    def tick(self) -> int:
        """One occurrence -> how many this one and those since the last line make, when a
        line is due now; 0 when not (they are counted on)."""
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.interval_s
        count, self._count = self._count, 0
        return count
