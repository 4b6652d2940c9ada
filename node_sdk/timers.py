"""Timer inputs that tick in the node's own process, on the monotonic clock, without drift.

Tick k is due at `start + k * period` (never `last + period`, which drifts); a tick found
late fires once and the ones it overran are skipped, never bursted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class Timer:
    """One timer input's schedule."""

    __slots__ = ("deadline", "input_id", "period_ns", "skipped", "start_ns", "ticks")

    def __init__(self, input_id: str, period_ns: int, start_ns: int, at_once: bool = False) -> None:
        self.input_id = input_id
        self.period_ns = period_ns
        # dora's first tick fires at the start; flow's one period later (docs/sdk-reference.md)
        self.start_ns = start_ns - period_ns if at_once else start_ns
        self.deadline = start_ns if at_once else start_ns + period_ns
        self.ticks = 0
        self.skipped = 0

    def fire(self, now_ns: int) -> bool:
        """True when a tick is due at `now_ns`; moves the deadline past `now_ns`."""
        if now_ns < self.deadline:
            return False
        k = (now_ns - self.start_ns) // self.period_ns  # the last tick index that is due
        self.skipped += k - (self.deadline - self.start_ns) // self.period_ns
        self.deadline = self.start_ns + (k + 1) * self.period_ns
        self.ticks += 1
        return True


class Timers:
    """All timer inputs of a node; polled by `Node.next`."""

    def __init__(
        self, clock: Callable[[], int] = time.monotonic_ns, *, first_at_once: bool = False
    ) -> None:
        self._clock = clock
        self._first_at_once = first_at_once
        self._timers: list[Timer] = []

    def start(self, periods: Iterable[tuple[str, int]]) -> None:
        now = self._clock()
        at_once = self._first_at_once
        self._timers = [Timer(i, period, now, at_once) for i, period in periods]

    def __bool__(self) -> bool:
        return bool(self._timers)

    def due(self) -> list[str]:
        """The input ids whose tick is due now, earliest deadline first."""
        if not self._timers:
            return []
        now = self._clock()
        ready = sorted((t for t in self._timers if now >= t.deadline), key=lambda t: t.deadline)
        return [t.input_id for t in ready if t.fire(now)]

    def seconds_to_next(self) -> float | None:
        """How long until the next tick is due (0 if one is due), None without timers."""
        if not self._timers:
            return None
        wait = min(t.deadline for t in self._timers) - self._clock()
        return max(wait, 0) / 1e9
