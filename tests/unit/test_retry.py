"""The retry helper under trio's autojump clock: delays, jitter, deadline, logs, exhaustion."""

from __future__ import annotations

import itertools
import logging
import random

import pytest
import trio

from daemon.model.retry import Backoff, RetryExhausted, retry_sync
from daemon.run.retry import retry_async


class NotYet(Exception):
    pass


class Never(Exception):
    pass


def test_delays_grow_are_capped_and_jittered_within_bounds() -> None:
    policy = Backoff(attempts=8, initial=0.1, factor=2.0, max_delay=1.0, jitter=0.2)
    delays = list(policy.delays(random.Random(1)))
    assert len(delays) == 7
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for got, want in zip(delays, nominal, strict=True):
        assert want * 0.8 <= got <= want * 1.2


async def test_succeeds_after_transient_failures(autojump_clock: trio.abc.Clock) -> None:
    calls = []

    async def flaky() -> str:
        calls.append(trio.current_time())
        if len(calls) < 4:
            raise NotYet("not ready")
        return "ok"

    policy = Backoff(attempts=10, initial=1.0, factor=2.0, max_delay=100, jitter=0.0, deadline=100)
    result = await retry_async(flaky, what="flaky", policy=policy, retry_on=(NotYet,))
    assert result == "ok"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0])


async def test_exhaustion_raises_with_the_last_cause(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def never() -> None:
        raise NotYet("still not ready")

    caplog.set_level(logging.INFO, logger="daemon.model.retry")
    policy = Backoff(attempts=3, initial=0.5, jitter=0.0, deadline=100)
    with pytest.raises(RetryExhausted, match="gave up after 3 attempts") as info:
        await retry_async(never, what="waiting", policy=policy, retry_on=(NotYet,))
    assert isinstance(info.value.__cause__, NotYet)
    retries = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert retries == [  # a WARNING per retry, naming the attempt, the operation and the cause
        ("WARNING", "retry 1/2 for waiting: still not ready (next attempt in 0.50s)"),
        ("WARNING", "retry 2/2 for waiting: still not ready (next attempt in 1.00s)"),
    ]


async def test_expected_misses_are_logged_at_debug_and_later_ones_warned(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def never() -> None:
        raise NotYet("no answer")

    caplog.set_level(logging.DEBUG, logger="daemon.model.retry")
    policy = Backoff(attempts=4, initial=0.5, jitter=0.0, deadline=100)
    with pytest.raises(RetryExhausted):
        await retry_async(never, what="a keeper", policy=policy, retry_on=(NotYet,),
                          expected_misses=2)  # fmt: skip
    assert [r.levelname for r in caplog.records] == ["DEBUG", "DEBUG", "WARNING"]


async def test_deadline_bounds_the_attempt_in_flight(autojump_clock: trio.abc.Clock) -> None:
    attempts = 0

    async def hangs() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(5.0)  # each attempt takes 5 s, then fails
        raise NotYet("slow")

    policy = Backoff(attempts=10, initial=1.0, jitter=0.0, deadline=6.0)
    start = trio.current_time()
    with pytest.raises(RetryExhausted, match="6s deadline, during attempt 2"):
        await retry_async(hangs, what="slow", policy=policy, retry_on=(NotYet,))
    assert trio.current_time() - start == pytest.approx(6.0)  # not 11 s: no attempt outlives it
    assert attempts == 2


async def test_a_cancelled_caller_stops_the_wait_at_once(autojump_clock: trio.abc.Clock) -> None:
    attempts = 0

    async def never() -> None:
        nonlocal attempts
        attempts += 1
        raise NotYet("no")

    policy = Backoff(attempts=10, initial=4.0, jitter=0.0, deadline=100)
    start = trio.current_time()
    with trio.move_on_after(1.0):
        await retry_async(never, what="cancelled", policy=policy, retry_on=(NotYet,))
    assert trio.current_time() - start == pytest.approx(1.0)  # no leftover sleep
    assert attempts == 1  # no extra attempt


async def test_deadline_bounds_the_whole_wait(autojump_clock: trio.abc.Clock) -> None:
    async def never() -> None:
        raise NotYet("no")

    policy = Backoff(attempts=100, initial=1.0, factor=2.0, max_delay=10, jitter=0.0, deadline=20)
    start = trio.current_time()
    with pytest.raises(RetryExhausted):
        await retry_async(never, what="bounded", policy=policy, retry_on=(NotYet,))
    assert trio.current_time() - start <= 20


async def test_errors_that_cannot_heal_are_raised_at_once(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise Never("missing file")

    with pytest.raises(Never):
        await retry_async(broken, what="broken", policy=Backoff(), retry_on=(NotYet,))
    assert calls == 1


def test_sync_twin_uses_the_same_policy() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    attempts = iter([NotYet("a"), NotYet("b"), None])

    def operation() -> str:
        outcome = next(attempts)
        if outcome is not None:
            raise outcome
        return "up"

    policy = Backoff(initial=0.1, jitter=0.0)
    assert (
        retry_sync(
            operation,
            what="up",
            policy=policy,
            retry_on=(NotYet,),
            sleep=sleep,
            clock=lambda: now[0],
        )
        == "up"
    )
    assert slept == pytest.approx([0.1, 0.2])


def test_an_expected_wait_logs_its_misses_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="daemon.model.retry")
    attempts = iter([NotYet("a"), NotYet("b"), None])

    def operation() -> str:
        outcome = next(attempts)
        if outcome is not None:
            raise outcome
        return "up"

    policy = Backoff(initial=0.01, jitter=0.0)
    done = retry_sync(
        operation, what="up", policy=policy, retry_on=(NotYet,), sleep=lambda _: None,
        expected=True,
    )  # fmt: skip
    assert done == "up"
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.DEBUG]
