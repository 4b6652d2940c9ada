"""Node log records: one JSON object per line in `runs/<uuid>/logs/<node>.log`; pure.

A node's stdout and stderr lines are recorded as they come. A line on stderr that starts
with `LOG_MARKER` is a structured record from the SDK's logging bridge and keeps its level
and logger. `format_record` renders a record the way `flow logs` shows it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

LOG_MARKER = "\x1eFLOWLOG"


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


def record_from_output(stream: str, line: str, now: float | None = None) -> LogRecord:
    """Turn one captured stdout/stderr line (no trailing newline) into a record."""
    stamp = time.time() if now is None else now
    if stream == "stderr" and line.startswith(LOG_MARKER):
        try:
            data = json.loads(line[len(LOG_MARKER) :])
            return LogRecord(
                time=float(data.get("t", stamp)),
                stream="log",
                message=str(data.get("m", "")),
                level=str(data.get("lvl", "INFO")),
                logger=str(data.get("lg", "")) or None,
            )
        except (ValueError, TypeError, AttributeError):
            pass  # not a record after all: keep the raw line
    return LogRecord(time=stamp, stream=stream, message=line)


def parse_line(line: str) -> LogRecord:
    """Read one line of a log file back; a line that is not a record is kept as text."""
    try:
        data = json.loads(line)
        return LogRecord(
            time=float(data["t"]),
            stream=str(data["s"]),
            message=str(data["m"]),
            level=data.get("lvl"),
            logger=data.get("lg"),
        )
    except (ValueError, KeyError, TypeError):
        return LogRecord(time=0.0, stream="stdout", message=line.rstrip("\n"))


def format_record(record: LogRecord, node: str | None = None) -> str:
    """`12:00:01 INFO receiver: text` for log records, `12:00:01 text` for output lines."""
    clock = time.strftime("%H:%M:%S", time.localtime(record.time))
    if record.stream == "log":
        who = record.logger or node or "root"
        return f"{clock} {record.level or 'INFO'} {who}: {record.message}"
    if record.stream == "stderr":
        return f"{clock} stderr: {record.message}"
    return f"{clock} {record.message}"
