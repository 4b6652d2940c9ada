"""`OncePerKey`: WARNING for the first occurrence of a key, DEBUG after; bounded memory.
`OncePerInterval`: WARNING at most once per interval, with the count of those between."""

from __future__ import annotations

import logging
import time

from daemon.model.once import OncePerInterval, OncePerKey


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


def test_once_per_interval_warns_again_after_it_with_the_count_between() -> None:
    once = OncePerInterval(interval_s=0.2)
    assert once.level() == (logging.WARNING, 0)
    assert [once.level() for _ in range(3)] == [(logging.DEBUG, 0)] * 3
    time.sleep(0.25)
    assert once.level() == (logging.WARNING, 3)  # the three it did not warn of
    assert once.level() == (logging.DEBUG, 0)
