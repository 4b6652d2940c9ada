"""`OncePerKey`: WARNING for the first occurrence of a key, DEBUG after; bounded memory.
`LogRate`: a line at most once per interval, with the count of those it stands for."""

from __future__ import annotations

import logging
import time

from daemon.model.once import OncePerKey
from node_sdk.log_rate import LogRate


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


def test_a_log_rate_says_again_after_its_interval_with_the_count_between() -> None:
    rate = LogRate(interval_s=0.2)
    assert rate.tick() == 1  # the first at once
    assert [rate.tick() for _ in range(3)] == [0, 0, 0]
    time.sleep(0.25)
    assert rate.tick() == 4  # the three it did not say, and this one
    assert rate.tick() == 0
