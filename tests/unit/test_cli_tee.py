"""`flow run`'s stdout writer: a stuck or gone reader never blocks the keeper handing lines over."""

from __future__ import annotations

import threading
import time

import pytest
from rich.text import Text

from cli import tee
from cli.tee import StdoutTee


def test_a_stuck_reader_costs_lines_not_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tee, "DRAIN_S", 0.2)
    monkeypatch.setattr(tee, "WAIT_S", 0.3)
    unblock = threading.Event()
    written: list[str] = []

    def write(line: Text) -> None:
        unblock.wait()
        written.append(line.plain)

    out = StdoutTee(write)
    started = time.monotonic()
    for i in range(tee.QUEUE_LINES + 50):
        out.put(Text(str(i)))
    assert time.monotonic() - started < 1.0  # the keeper's thread waited once, briefly
    assert 49 <= out.dropped <= 50  # the writer may hold one line already
    assert out.close() is False  # still stuck: the caller says so and goes on
    unblock.set()
    deadline = time.monotonic() + 5
    while len(written) < tee.QUEUE_LINES and time.monotonic() < deadline:
        time.sleep(0.01)
    assert written[:3] == ["0", "1", "2"]  # in order


def test_a_reader_that_left_ends_the_writing() -> None:
    calls: list[str] = []

    def write(line: Text) -> None:
        calls.append(line.plain)
        raise BrokenPipeError

    out = StdoutTee(write)
    out.put(Text("a"))
    assert out.close() is True
    assert out.broken
    out.put(Text("b"))  # dropped without a word: nobody reads
    assert calls == ["a"]


def test_a_reader_a_little_behind_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tee, "QUEUE_LINES", 10)
    written: list[str] = []

    def slow(line: Text) -> None:
        time.sleep(0.002)
        written.append(line.plain)

    out = StdoutTee(slow)
    for i in range(200):  # twenty times the queue, each put waits for room
        out.put(Text(str(i)))
    assert out.close() is True
    assert out.dropped == 0
    assert written == [str(i) for i in range(200)]
