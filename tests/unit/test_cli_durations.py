"""Durations and `--since` times as the CLI parses them."""

from __future__ import annotations

import datetime as dt

import pytest

from cli.durations import DurationError, human_age, parse_duration, parse_since


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5", 1.5),
        ("7", 7.0),
        ("2d", 172800.0),
        ("1m30s500ms", 90.5),
        (" 10S ", 10.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "1h 30m", "-5s", "m10", "10s5", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_duration(text)


def test_since_duration_is_relative_to_now() -> None:
    assert parse_since("10m", now=10_000.0) == 9_400.0


def test_since_iso_time() -> None:
    aware = "2024-05-01T12:00:00+00:00"
    assert parse_since(aware) == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp()
    naive = "2024-05-01T12:00:00"
    assert parse_since(naive) == dt.datetime(2024, 5, 1, 12).timestamp()


def test_since_clock_time_is_today() -> None:
    now = dt.datetime(2024, 5, 1, 15, 30).timestamp()
    assert parse_since("12:00", now=now) == dt.datetime(2024, 5, 1, 12).timestamp()


def test_since_rejects_nonsense() -> None:
    with pytest.raises(DurationError, match="--since"):
        parse_since("yesterday-ish")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m"), (7200, "2h"), (90000, "1d")]
)
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text
