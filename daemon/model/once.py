"""A recurring event logs WARNING once per key, then DEBUG (fault matrix D4 and row 30)."""

from __future__ import annotations

import logging
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
