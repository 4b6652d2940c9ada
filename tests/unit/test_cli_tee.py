"""`flow run`'s stdout writer: a stuck or gone reader never blocks the keeper handing lines over."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from cli import tee
from cli.tee import StdoutTee


def test_a_stuck_reader_costs_lines_not_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tee, "DRAIN_S", 0.2)
    monkeypatch.setattr(tee, "WAIT_S", 0.3)
    monkeypatch.setattr(tee, "BATCH_LINES", 1)
    unblock = threading.Event()
    written: list[str] = []

    def write(lines: Sequence[str]) -> None:
        unblock.wait()
        written.extend(lines)

    out = StdoutTee(write)
    started = time.monotonic()
    total = tee.QUEUE_LINES + 50
    for i in range(total):
        out.put(str(i))
    assert time.monotonic() - started < 1.0  # the keeper's thread waited once, briefly
    assert 49 <= out.dropped <= 50  # the writer may hold one line already
    assert out.close() is False  # still stuck: the caller says so and goes on
    unblock.set()
    deadline = time.monotonic() + 5
    while len(written) < total - out.dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    kept = total - out.dropped
    assert written == [str(i) for i in range(kept)]  # in order, the first ones kept


def test_a_reader_that_left_ends_the_writing() -> None:
    calls: list[str] = []

    def write(lines: Sequence[str]) -> None:
        calls.extend(lines)
        raise BrokenPipeError

    out = StdoutTee(write)
    out.put("a")
    assert out.close() is True
    assert out.broken
    out.put("b")  # dropped without a word: nobody reads
    assert calls == ["a"]


def test_a_reader_a_little_behind_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tee, "QUEUE_LINES", 10)
    written: list[str] = []
    batches: list[int] = []

    def slow(lines: Sequence[str]) -> None:
        time.sleep(0.002)
        written.extend(lines)
        batches.append(len(lines))

    out = StdoutTee(slow)
    for i in range(200):  # twenty times the queue, each put waits for room
        out.put(str(i))
    assert out.close() is True
    assert out.dropped == 0
    assert written == [str(i) for i in range(200)]
    assert max(batches) <= 10


def test_lines_that_came_meanwhile_are_written_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tee, "BATCH_LINES", 300)
    first = threading.Event()
    batches: list[list[str]] = []

    def write(lines: Sequence[str]) -> None:
        first.wait()
        batches.append(list(lines))

    out = StdoutTee(write)
    for i in range(1000):
        out.put(str(i))
    first.set()
    assert out.close() is True
    assert [line for batch in batches for line in batch] == [str(i) for i in range(1000)]
    assert len(batches) <= 5  # the one taken first, then the rest BATCH_LINES at a time
    assert max(len(batch) for batch in batches) == 300
