"""The trio driver of the one retry helper (policy and blocking driver: daemon/model/retry.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from daemon.model.retry import Backoff, RetryExhausted

T = TypeVar("T")

log = logging.getLogger("daemon.model.retry")  # one logger for every retry line


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: Backoff,
    retry_on: tuple[type[BaseException], ...],
) -> T:
    """Await `operation` until it succeeds, under `policy`; trio's clock for the waits."""
    start = trio.current_time()
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return await operation()
        except retry_on as exc:
            delay = next(delays, None)
            elapsed = trio.current_time() - start
            if delay is None or elapsed + delay > policy.deadline:
                raise RetryExhausted(f"{what}: gave up after {attempt} attempts: {exc}") from exc
            log.info("%s: attempt %d failed (%s); retrying in %.2fs", what, attempt, exc, delay)
            await trio.sleep(delay)
            attempt += 1
