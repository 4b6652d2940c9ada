"""A recurring event logs WARNING once per key, then DEBUG (fault matrix D4 and row 30),
or once per interval when it has no key."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

import attrs

MAX_KEYS = 4096  # a flood of new keys costs memory once: past this the memory starts again


@attrs.define(eq=False)
class OncePerKey:
    """Which level the next occurrence of `key` is logged at."""

    max_keys: int = MAX_KEYS
    _seen: dict[Hashable, int] = attrs.field(factory=dict)

    def level(self, key: Hashable) -> int:
        seen = self._seen.get(key, 0)
        if not seen and len(self._seen) >= self.max_keys:
            self._seen.clear()  # bounded: a key forgotten here may warn once more
        self._seen[key] = seen + 1
        return logging.WARNING if seen == 0 else logging.DEBUG


@attrs.define(eq=False)
class OncePerInterval:
    """A recurring event that has no key worth one (a malformed frame: any sender, any
    bytes) logs WARNING at most once per `interval_s`, with how many came in between; the
    rest DEBUG. A flood of them then adds a line to daemon.log every `interval_s`."""

    interval_s: float = 10.0
    _next: float = 0.0
    _quiet: int = 0

    def level(self) -> tuple[int, int]:
        """(the level of this occurrence, the occurrences not warned of before it)."""
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return logging.DEBUG, 0
        self._next = now + self.interval_s
        quiet, self._quiet = self._quiet, 0
        return logging.WARNING, quiet
