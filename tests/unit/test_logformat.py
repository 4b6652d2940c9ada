"""The one log line format, levels, ANSI stripping, `--json`; the SDK's dynamic-node file."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.keeper.children import MAX_LINE
from daemon.model.logformat import (
    LogRecord,
    TracebackLevels,
    format_lines,
    json_line,
    level_number,
    merge_times,
    parse_line,
    record_from_output,
    strip_ansi,
)
from node_sdk import logbridge

NOON = time.mktime((2026, 1, 2, 12, 0, 1, 0, 0, -1)) + 0.25  # 12:00:01.250 local time


def test_every_line_of_a_record_carries_node_time_and_level() -> None:
    record = LogRecord(NOON, "log", "boom\nTraceback:\n  here", level="ERROR", logger="cam")
    assert format_lines(record, "camera", width=8) == [
        "camera   | 12:00:01.250 ERROR cam: boom",
        "camera   | 12:00:01.250 ERROR cam: Traceback:",
        "camera   | 12:00:01.250 ERROR cam:   here",
    ]
    assert format_lines(LogRecord(NOON, "stderr", "oops"), "n") == ["n | 12:00:01.250 stderr: oops"]
    assert format_lines(LogRecord(NOON, "stdout", "a\r"), "n") == ["n | 12:00:01.250 a"]
    # a line read back that was not a record has no time: dashes, never 1970
    assert format_lines(parse_line("garbage"), "n") == ["n | --:--:--.--- garbage"]


def test_levels_of_records_and_plain_lines() -> None:
    assert level_number(LogRecord(0, "log", "m", level="DEBUG")) == 10
    assert level_number(LogRecord(0, "log", "m", level="CRITICAL")) == 50
    assert level_number(LogRecord(0, "log", "m", level="25")) == 25
    assert level_number(LogRecord(0, "log", "m", level="custom")) == 20
    assert level_number(LogRecord(0, "stdout", "m")) == 20
    assert level_number(LogRecord(0, "stderr", "m")) == 30


def test_strip_ansi_leaves_the_text() -> None:
    assert strip_ansi("\x1b[1;31mred\x1b[0m \x1b]0;title\x07x\x1b[2K") == "red x"
    assert strip_ansi("no escapes [31m") == "no escapes [31m"


def test_json_line_is_one_object_with_the_message_whole() -> None:
    record = LogRecord(1767355201.25, "log", "a\n\x1b[31mb\x1b[0m", level="INFO", logger="x")
    data = json.loads(json_line("cam", record))
    assert data == {
        "time": "2026-01-02T12:00:01.250Z",
        "node": "cam",
        "level": "INFO",
        "stream": "log",
        "logger": "x",
        "message": "a\nb",
    }
    assert json.loads(json_line("cam", record, keep_ansi=True))["message"] == "a\n\x1b[31mb\x1b[0m"
    plain = json.loads(json_line("cam", LogRecord(0.0, "stdout", "t")))
    assert (plain["time"], plain["level"], plain["stream"]) == (None, None, "stdout")


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("viewer", level, __file__, 1, message, None, None)


def test_a_dynamic_nodes_file_is_read_back_as_the_keepers_records(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "viewer.log"
    log_file = logbridge.RunLogFile(path)
    try:
        raise KeyError("k")
    except KeyError:
        failing = _record("failed", logging.ERROR)
        failing.exc_info = sys.exc_info()
    log_file.append(_record("hello"))
    log_file.append(failing)
    first, second = [parse_line(line) for line in path.read_text().splitlines()]
    assert (first.stream, first.level, first.logger, first.message) == (
        "log", "INFO", "viewer", "hello"
    )  # fmt: skip
    assert second.level == "ERROR"
    assert second.message.startswith("failed\nTraceback")
    assert second.message.endswith("KeyError: 'k'")
    assert path.stat().st_mode & 0o077 == 0  # nobody else reads a node's log


def test_a_dynamic_nodes_file_rotates_like_the_keepers(tmp_path: Path) -> None:
    path = tmp_path / "viewer.log"
    log_file = logbridge.RunLogFile(path, max_bytes=300)
    for i in range(12):
        log_file.append(_record(f"record {i:02d} " + "x" * 60))
    kept = [path.with_name(f"viewer.log.{i}") for i in (3, 2, 1)] + [path]
    assert not path.with_name("viewer.log.4").exists()
    messages = [parse_line(line).message[:9] for p in kept for line in p.read_text().splitlines()]
    assert messages == sorted(messages)  # oldest first, nothing reordered
    assert messages[-1] == "record 11"
    assert all(p.stat().st_size <= 300 for p in kept)


def test_readable_lines_repeat_the_head() -> None:
    record = _record("one\ntwo", logging.WARNING)
    record.created, record.msecs = NOON, 250.0
    assert logbridge.readable(record) == (
        "12:00:01.250 WARNING viewer: one\n12:00:01.250 WARNING viewer: two\n"
    )


def test_merge_times_keep_a_nodes_own_order() -> None:
    # a print stamped at its read (2.0) before a record the node made at 1.5, after it
    records = [
        LogRecord(1.0, "stdout", "a"),
        LogRecord(2.0, "stdout", "print"),
        LogRecord(1.5, "log", "record", level="INFO"),
        LogRecord(0.0, "stdout", "not a record"),
        LogRecord(3.0, "stdout", "later"),
    ]
    assert list(merge_times(records)) == [1.0, 2.0, 2.0, 2.0, 3.0]
    # a time far ahead of now (a wrong clock, a forged record) drags nothing after it
    future = [LogRecord(1.0, "stdout", "a"), LogRecord(4e11, "log", "far"),
              LogRecord(2.0, "stdout", "b")]  # fmt: skip
    assert list(merge_times(future)) == [1.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "message",
    ["x" * 1_000_000, "€" * 300_000, "a" * 50_000 + "\U0001d11e" * 50_000, "\n" * 200_000],
    ids=["ascii", "3-byte", "ascii-then-4-byte", "escaped"],
)
def test_a_record_line_fits_one_keeper_line(message: str) -> None:
    assert logbridge.MAX_RECORD_BYTES < MAX_LINE  # the keeper never cuts a record
    line = logbridge.record_line(1.5, "W" * 10_000, "L" * 10_000, message)
    assert len(line.encode()) <= logbridge.MAX_RECORD_BYTES
    record = record_from_output("stdout", logbridge.LOG_MARKER + line, 2.0)
    assert record.stream == "log"
    assert record.time == 1.5
    assert record.message.startswith(message[:100])
    assert record.message.endswith("characters cut)")


CHAINED = """\
try:
    1 / 0
except ZeroDivisionError as exc:
    raise RuntimeError("again") from exc
"""
GROUP = 'raise ExceptionGroup("two", [ValueError("a"), ExceptionGroup("in", [KeyError("k")])])'


@pytest.mark.parametrize("program", [CHAINED, GROUP], ids=["chained", "group"])
def test_a_tracebacks_lines_are_errors_and_nothing_around_them(program: str) -> None:
    # what Python itself prints for an uncaught exception, between two lines of the node's
    ended = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                           check=False)  # fmt: skip
    traceback = ended.stderr.splitlines()
    assert traceback[0].endswith("Traceback (most recent call last):")
    levels = TracebackLevels()
    lines = ["a warning of its own", *traceback, "after it", "not one: " + traceback[0]]
    got = [levels.level(line) for line in lines]
    expected = [None] + ["ERROR"] * len(traceback) + [None, None]
    assert got == expected, list(zip(lines, got, strict=True))
