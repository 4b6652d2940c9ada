"""The one retry helper (SPEC 7.5): attempts, exponential backoff with jitter, a deadline.

Every wait on something that may not be ready yet goes through it: the CLI reaching the
daemon, the daemon reaching a run keeper, re-adoption after a restart. Each retry is
logged; when attempts or the deadline run out, the last cause is raised. Errors that
cannot heal (anything not in `retry_on`) are raised at once, never retried. The policy
and the blocking driver live here; the trio driver is `daemon.run.retry.retry_async`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs

T = TypeVar("T")

log = logging.getLogger(__name__)


class RetryExhausted(Exception):
    """Raised with the last cause (`__cause__`) when no attempt succeeded."""


@attrs.frozen
class Backoff:
    """The policy: how many attempts, how long between them, and for how long in all."""

    attempts: int = 10
    initial: float = 0.05
    factor: float = 2.0
    max_delay: float = 2.0
    jitter: float = 0.2  # each delay is scaled by a factor in [1 - jitter, 1 + jitter]
    deadline: float = 15.0  # seconds from the first attempt

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delay before each retry (attempts - 1 of them), jittered and capped."""
        pick = (rng or random).uniform
        delay = self.initial
        for _ in range(self.attempts - 1):
            yield min(self.max_delay, delay) * pick(1 - self.jitter, 1 + self.jitter)
            delay *= self.factor


def log_retry(
    what: str,
    attempt: int,
    policy: Backoff,
    cause: BaseException,
    delay: float,
    level: int = logging.WARNING,
) -> None:
    """The one line every retry logs (WARNING: a retry is something an operator may act on;
    a wait whose early misses are expected passes DEBUG)."""
    log.log(
        level,
        "retry %d/%d for %s: %s (next attempt in %.2fs)",
        attempt,
        policy.attempts - 1,
        what,
        cause,
        delay,
    )


def retry_sync(
    operation: Callable[[], T],
    *,
    what: str,
    policy: Backoff,
    retry_on: tuple[type[BaseException], ...],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    expected: bool = False,
) -> T:
    """Call `operation` until it succeeds, under `policy`; blocking (the CLI's driver).

    A blocking call cannot be interrupted from here, so `operation` must bound itself (the
    CLI's requests carry their own timeout); the deadline bounds the attempts and waits.
    `expected`: misses are the normal course (a daemon still starting), logged at DEBUG;
    only giving up is news.
    """
    start = clock()
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return operation()
        except retry_on as exc:
            delay = next(delays, None)
            if delay is None or clock() - start + delay > policy.deadline:
                raise RetryExhausted(f"{what}: gave up after {attempt} attempts: {exc}") from exc
            level = logging.DEBUG if expected else logging.WARNING
            log_retry(what, attempt, policy, exc, delay, level)
            sleep(delay)
            attempt += 1
