"""The trio driver of the one retry helper (policy and blocking driver: daemon/model/retry.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from daemon.model.retry import Backoff, RetryExhausted, log_retry

T = TypeVar("T")


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: Backoff,
    retry_on: tuple[type[BaseException], ...],
    expected_misses: int = 0,
) -> T:
    """Await `operation` until it succeeds, under `policy`; trio's clock for the waits.

    The deadline bounds the attempt in flight too: an attempt still running when it passes is
    cancelled, and the helper raises `RetryExhausted` at the deadline, not after the attempt.
    The first `expected_misses` retries are logged at DEBUG: misses that are the usual (a
    process just started), not something to act on.
    """
    end = trio.current_time() + policy.deadline
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            with trio.move_on_at(end):
                return await operation()
            raise RetryExhausted(
                f"{what}: gave up at the {policy.deadline:g}s deadline, during attempt {attempt}"
            )
        except retry_on as exc:
            delay = next(delays, None)
            if delay is None or trio.current_time() + delay > end:
                raise RetryExhausted(f"{what}: gave up after {attempt} attempts: {exc}") from exc
            level = logging.DEBUG if attempt <= expected_misses else logging.WARNING
            log_retry(what, attempt, policy, exc, delay, level)
            await trio.sleep(delay)
            attempt += 1
