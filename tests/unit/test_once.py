"""`OncePerKey`: WARNING for the first occurrence of a key, DEBUG after; bounded memory."""

from __future__ import annotations

import logging

from daemon.model.once import OncePerKey


def test_first_of_each_key_warns_then_debug() -> None:
    once = OncePerKey()
    levels = [once.level(("late", "r1", "a")) for _ in range(100)]
    assert levels == [logging.WARNING] + [logging.DEBUG] * 99
    assert once.level(("late", "r1", "b")) == logging.WARNING  # another key, its own warning


def test_a_flood_of_keys_stays_bounded() -> None:
    once = OncePerKey(max_keys=10)
    for i in range(1000):
        once.level(i)
    assert len(once._seen) <= 10
