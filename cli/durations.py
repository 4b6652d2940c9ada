"""Durations and `--since` times for the CLI; durations parse in `daemon.model.units`."""

from __future__ import annotations

import datetime as dt
import time

from daemon.model.units import DurationError, parse_duration

__all__ = [
    "DurationError",
    "duration_arg",
    "human_age",
    "parse_duration",
    "parse_since",
    "since_arg",
]


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for `--since`: a duration ago, an ISO date-time, or a clock time today.

    Naive times are local time.
    """
    current = time.time() if now is None else now
    try:
        return current - parse_duration(text)
    except DurationError:
        pass
    s = text.strip()
    try:
        stamp = dt.datetime.fromisoformat(s)
    except ValueError:
        try:
            clock = dt.time.fromisoformat(s)
        except ValueError:
            raise DurationError(
                f"invalid --since {text!r}: give a duration (10m) or a time "
                "(2024-05-01T12:00:00, 12:00)"
            ) from None
        today = dt.datetime.fromtimestamp(current).date()
        stamp = dt.datetime.combine(today, clock)
    return stamp.timestamp()  # naive -> local time, aware -> its own offset


def duration_arg(text: str) -> float:
    """argparse `type=` for durations: a bad value becomes a usage error (exit 2)."""
    import argparse

    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def since_arg(text: str) -> float:
    """argparse `type=` for `--since`."""
    import argparse

    try:
        return parse_since(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def human_age(seconds: float) -> str:
    """`42s`, `5m`, `3h`, `2d`: a short, rounded-down age."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
