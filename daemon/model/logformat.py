"""Node log records: one JSON object per line in `runs/<uuid>/logs/<node>.log`; pure.

A node's stdout and stderr lines are recorded as they come. A line that starts with
`LOG_MARKER` is a structured record from the SDK's logging bridge and keeps its level and
logger (the bridge writes them on stdout, with the node's prints: their order is kept;
an older SDK wrote them on stderr). `line_parts` / `format_lines` render a record the one
way `flow run`, an attached `flow start` and `flow logs` all show it: every line of a
multi-line record carries the node, the time and the level, so grepping by any of them
finds all of it.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import attrs

LOG_MARKER = "\x1eFLOWLOG"
MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: the last second datetime shows
MAX_AHEAD_S = 60.0  # how far ahead of now a record's time may move a node's later lines
MAX_LEVEL_DIGITS = 6  # a numeric level ("25"); more digits are no level logging knows

# the level a line without one counts as for `--level`: what a program writes on stderr
# is its diagnostics, so `--level WARNING` keeps it and hides plain stdout chatter
STREAM_LEVELS = {"stdout": "INFO", "stderr": "WARNING"}
LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}
# logging's default format (`basicConfig()` with no arguments), on stderr
_PYTHON_DEFAULT = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL):([\w.-]*):(.*)")
# CSI (colours, cursor moves), OSC (titles, links; ended by BEL or ST), and two-byte escapes
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


@attrs.frozen
class LogRecord:
    """One line of a node's log."""

    time: float
    stream: str  # "stdout", "stderr" or "log" (from the logging bridge)
    message: str
    level: str | None = None
    logger: str | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"t": round(self.time, 6), "s": self.stream, "m": self.message}
        if self.level is not None:
            data["lvl"] = self.level
        if self.logger is not None:
            data["lg"] = self.logger
        return json.dumps(data, ensure_ascii=False)


def _sane_time(value: object, default: float) -> float:
    """A record's time as a node or a file says it, if it is one a clock can show (finite,
    from 1970 to the year 9999); else `default`. A node's `1e300` raised OverflowError in
    the keeper, which ended its run, and in every `flow logs` of it after."""
    try:
        stamp = float(value)  # type: ignore[arg-type]  # anything JSON holds: refused below
    except (TypeError, ValueError, OverflowError):
        return default
    return stamp if math.isfinite(stamp) and 0.0 <= stamp <= MAX_TIME else default


def record_from_output(stream: str, line: str, now: float | None = None) -> LogRecord:
    """Turn one captured stdout/stderr line (no trailing newline) into a record."""
    stamp = time.time() if now is None else now
    if line.startswith(LOG_MARKER):
        try:
            data = json.loads(line[len(LOG_MARKER) :])
            return LogRecord(
                time=_sane_time(data.get("t", stamp), stamp),
                stream="log",
                message=str(data.get("m", "")),
                level=str(data.get("lvl", "INFO")),
                logger=str(data.get("lg", "")) or None,
            )
        except (ValueError, TypeError, AttributeError):
            pass  # not a record after all: keep the raw line
    elif stream == "stderr" and (match := _PYTHON_DEFAULT.match(line)):
        # `logging.info(...)` before any configuration calls `basicConfig()`, whose
        # handler writes `LEVEL:logger:message` on stderr, past the SDK's bridge
        level, logger, message = match.groups()
        return LogRecord(stamp, "log", message, level=level, logger=logger or None)
    return LogRecord(time=stamp, stream=stream, message=line)


TRACEBACK = "Traceback (most recent call last):"


class TracebackLevels:
    """The lines of a Python traceback on one stderr stream, told apart as ERROR: from its
    `Traceback (most recent call last):` (an exception group's is indented and barred)
    through its indented frames to the exception's own line, and on through the chained
    tracebacks after it (`During handling of the above exception...`). An uncaught
    exception is what `--level ERROR` looks for. A message's second line is not told."""

    def __init__(self) -> None:
        self.inside = False  # in a traceback's frames
        self.after = False  # just past its exception (or a group's closing bar)

    def level(self, line: str) -> str | None:
        """ERROR for a line of a traceback, None for any other; lines in the order read."""
        head = line[: -len(TRACEBACK)].strip(" +|").removesuffix("Exception Group").strip()
        if line.endswith(TRACEBACK) and not head:
            self.inside, self.after = True, False
            return "ERROR"
        indented = line[:1].isspace()
        if self.after:
            if not line or line in _CHAINED:  # a chain goes on
                return "ERROR"
            if indented and line.lstrip()[:1] in ("|", "+"):  # a group's next exception
                self.inside, self.after = True, False
                return "ERROR"
            self.after = False
            return None
        if not self.inside:
            return None
        if not indented or _GROUP_END.fullmatch(line):  # its exception, or a group's end
            self.inside, self.after = False, True
        return "ERROR"


_CHAINED = frozenset({
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
})  # fmt: skip
_GROUP_END = re.compile(r"\s*\+-+")


def parse_line(line: str) -> LogRecord:
    """Read one line of a log file back; a line that is not a record is kept as text."""
    try:
        data = json.loads(line)
        return LogRecord(
            time=_sane_time(data["t"], 0.0),
            stream=str(data["s"]),
            message=str(data["m"]),
            level=data.get("lvl"),
            logger=data.get("lg"),
        )
    except (ValueError, KeyError, TypeError):
        return LogRecord(time=0.0, stream="stdout", message=line.rstrip("\n"))


def merge_times(records: Iterable[LogRecord]) -> Iterator[float]:
    """Each record's time for merging one node's log with others': its own, or the latest
    before it when that is later, so a sort keeps the node's own order. A print is stamped
    when the keeper reads it, a logging record when the node made it: a record written
    after a print can carry the earlier time. A line that is no record (time 0) goes with
    the one before it."""
    last = 0.0
    horizon = time.time() + MAX_AHEAD_S  # a time past it (a wrong clock, a forged record)
    for record in records:
        if record.time <= horizon:  # ... must not drag every later line along with it
            last = max(last, record.time)
        yield last


def level_number(record: LogRecord) -> int:
    """The record's severity for `--level`; a stdout line is INFO, a stderr line WARNING
    (a Python traceback's lines ERROR, `TracebackLevels`)."""
    name = record.level or STREAM_LEVELS.get(record.stream)
    name = (name or "INFO").upper()
    if name.isascii() and name.isdigit() and len(name) <= MAX_LEVEL_DIGITS:  # "²" is a digit
        return int(name)
    return LEVEL_NUMBERS.get(name, LEVEL_NUMBERS["INFO"])


def clock(stamp: float) -> str:
    """`12:00:01.234` local time; a line read back without a time shows dashes."""
    if not stamp:
        return "--:--:--.---"
    seconds, millis = divmod(round(stamp * 1000), 1000)  # 0.9996 s is 1.000, never .999
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{millis:03d}"


class LineParts(NamedTuple):
    """One shown line: `node | ` (coloured per node on a terminal), the head, the text."""

    prefix: str
    head: str
    text: str


def line_parts(record: LogRecord, node: str, width: int = 0) -> list[LineParts]:
    """The lines a record shows as, each with its own prefix and head (never bare text)."""
    prefix = f"{node:<{width}} | "
    if record.stream == "log":
        head = f"{clock(record.time)} {record.level or 'INFO'} {record.logger or node}: "
    elif record.stream == "stderr":
        head = f"{clock(record.time)} stderr: "
    else:
        head = f"{clock(record.time)} "
    lines = record.message.split("\n") or [""]
    return [LineParts(prefix, head, line.rstrip("\r")) for line in lines]


def format_lines(record: LogRecord, node: str, width: int = 0) -> list[str]:
    """`node | 12:00:01.234 INFO logger: text`, one per line of the record; ANSI kept."""
    return [part.prefix + part.head + part.text for part in line_parts(record, node, width)]


def strip_ansi(text: str) -> str:
    """The text without terminal escape sequences (colours a node printed)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def json_line(node: str, record: LogRecord, *, keep_ansi: bool = False) -> str:
    """`flow logs --json`: one object with time (ISO 8601, UTC), node, level, stream, message.

    `level` is null for a plain stdout/stderr line (ERROR for a traceback's lines on
    stderr); `message` keeps its newlines.
    """
    message = record.message if keep_ansi else strip_ansi(record.message)
    # rounded to the millisecond as `clock` rounds it: both say the same time of a line
    millis = round(record.time * 1000)
    stamp = datetime.fromtimestamp(millis // 1000, UTC).isoformat(timespec="seconds")
    stamp = stamp.replace("+00:00", f".{millis % 1000:03d}+00:00")
    data = {
        "time": stamp.replace("+00:00", "Z") if record.time else None,
        "node": node,
        "level": record.level,
        "stream": record.stream,
        "logger": record.logger,
        "message": message,
    }
    # DEL and C1 as JSON escapes too (json leaves them raw): a terminal acts on \x9b
    return json.dumps(data, ensure_ascii=False).translate(_JSON_C1)


_JSON_C1 = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}

# Python's level names as dora writes them in a log entry
_DORA_LEVELS = {"WARNING": "warn", "CRITICAL": "error"}


def log_entry_json(node: str, record: LogRecord) -> str:
    """A log record as `send_logs_as` sends it: the JSON fields dora's log entries have
    (`timestamp`, `level`, `node_id`, `target`, `message`)."""
    level = record.level or "INFO"
    return json.dumps(
        {
            "timestamp": datetime.fromtimestamp(record.time, UTC).isoformat(),
            "level": _DORA_LEVELS.get(level, level.lower()),
            "node_id": node,
            "target": record.logger or node,
            "message": record.message,
        },
        ensure_ascii=False,
    )
