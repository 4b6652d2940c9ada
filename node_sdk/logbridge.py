"""Python `logging` -> the node's log: marked lines the keeper stores, or a dynamic node's file.

A spawned node's record is one stdout line: `LOG_MARKER` then JSON with `t` (epoch s),
`lvl`, `lg` (logger), `m` (message, with any traceback). On stdout, the pipe its `print`s
take, so the keeper reads them in the order the node wrote them (on two pipes, a read of
one could come before a read of the other that was written first). A dynamic node's stderr is a
terminal nobody records: it prints readable lines there and appends its records to the
run's log file itself. `daemon/model/logformat.py` reads both; node_sdk imports nothing
of ours, so the formats are duplicated here (unit tests check they agree).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:  # a path is made only for a dynamic node: pathlib stays out of the import
    from pathlib import Path

LOG_MARKER: Final = "\x1eFLOWLOG"
# a record's line, under the keeper's MAX_LINE (64 KiB, daemon/keeper/children.py)
MAX_RECORD_BYTES: Final = 60 * 1024
MAX_NAME_CHARS: Final = 256  # of a record's level and logger name
LEVEL_ENV: Final = "FLOW_LOG_LEVEL"
MAX_LOG_BYTES: Final = 16 << 20  # the daemon's default `log_max_bytes`
LOG_BACKUPS: Final = 3  # as the keeper's node logs (daemon/keeper/logs.py)
TRACE: Final = 5  # dora's level below debug (`node.log_trace`)
logging.addLevelName(TRACE, "TRACE")


class FlowLogHandler(logging.Handler):
    """A spawned node: writes each record as one marked JSON line on stdout (the keeper's)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record_line(record.created, record.levelname, record.name, _message(record))
            # the process's stdout, not one the program swapped in (`redirect_stdout`):
            # the keeper reads that one
            stream = self._stream or sys.__stdout__ or sys.stdout
            stream.write(f"{LOG_MARKER}{line}\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def record_line(created: float, level: str, logger: str, message: str) -> str:
    """One record as the keeper reads it, cut to MAX_RECORD_BYTES of UTF-8: the keeper cuts
    a longer line into pieces, which would no longer be one record (and on a node's
    `send_stdout_as` output, the pieces would go out as its data)."""
    level, logger = level[:MAX_NAME_CHARS], logger[:MAX_NAME_CHARS]  # names, not texts
    text = message
    line = json.dumps({"t": created, "lvl": level, "lg": logger, "m": text}, ensure_ascii=False)
    # a character of the line is at most 4 bytes of UTF-8
    size = len(line) if len(line) * 4 <= MAX_RECORD_BYTES else len(line.encode())
    for _ in range(4):  # each cut aims below the bound: one or two do
        if size <= MAX_RECORD_BYTES:
            break
        keep = max(0, len(text) * (MAX_RECORD_BYTES - 256) // size)
        text = f"{message[:keep]} ... ({len(message) - keep} characters cut)"
        line = json.dumps({"t": created, "lvl": level, "lg": logger, "m": text},
                          ensure_ascii=False)  # fmt: skip
        size = len(line.encode())
    return line


class RunLogFile:
    """A dynamic node's own log file in its run (`runs/<uuid>/logs/<node>.log`).

    Nobody reads a dynamic node's stderr, so the node appends its records itself, in the
    keeper's format (`daemon/model/logformat.py`, `LogRecord.to_json`), rotated like the
    keeper's files. A failed write never reaches the node: it is said once on stderr, and
    the file is opened again for the next record.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()  # records come from any thread of the node
        self._fd: int | None = None
        self._size = 0
        self._failed = False

    def append(self, record: logging.LogRecord) -> None:
        line = json.dumps(
            {"t": round(record.created, 6), "s": "log", "m": _message(record),
             "lvl": record.levelname, "lg": record.name},
            ensure_ascii=False,
        ) + "\n"  # fmt: skip
        data = line.encode("utf-8", "replace")
        with self._lock:
            try:
                if self._fd is not None and self._size + len(data) > self.max_bytes:
                    self._rotate()
                if self._fd is None:
                    self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                    self._fd = os.open(self.path, flags, 0o600)
                    self._size = os.fstat(self._fd).st_size
                os.write(self._fd, data)
                self._size += len(data)
            except OSError as exc:
                self._close()
                if not self._failed:
                    self._failed = True
                    sys.stderr.write(f"flow: cannot write the node log {self.path}: {exc}\n")

    def _rotate(self) -> None:
        self._close()
        for index in range(LOG_BACKUPS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class RunLogHandler(logging.Handler):
    """A dynamic node: each record into the run's log file and, unless the program has
    handlers of its own that show it, as readable lines on the node's own terminal."""

    def __init__(self, log_file: RunLogFile, *, show: bool) -> None:
        super().__init__()
        self.log_file = log_file
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log_file.append(record)
            if self.show:
                sys.stderr.write(readable(record))
                sys.stderr.flush()
        except Exception:
            self.handleError(record)


def readable(record: logging.LogRecord) -> str:
    """`12:00:01.234 INFO logger: text`, the head repeated on every line of the record."""
    clock = time.strftime("%H:%M:%S", time.localtime(record.created))
    head = f"{clock}.{int(record.msecs):03d} {record.levelname} {record.name}: "
    return "".join(f"{head}{line}\n" for line in _message(record).split("\n"))


def _message(record: logging.LogRecord) -> str:
    """The record's text with any traceback and stack, as one string."""
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
    if record.stack_info:
        message = f"{message}\n{record.stack_info}"
    return message


def level_from_env(default: int = logging.INFO) -> int:
    """`FLOW_LOG_LEVEL` (a name such as `debug`, or a number) -> a logging level."""
    text = os.environ.get(LEVEL_ENV, "").strip()
    if not text:
        return default
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    return level if isinstance(level, int) else default


def to_level(level: int | str) -> int:
    """`"info"`, `"INFO"` or `20` -> 20; an unknown name is ValueError."""
    if isinstance(level, int):
        return level
    found = logging.getLevelName(level.upper())
    if not isinstance(found, int):
        raise ValueError(f"unknown log level {level!r}")
    return found


def dynamic_log(run_id: str, node_id: str) -> Path:
    """Where a dynamic node of this FLOW_HOME's daemon keeps its log: as a spawned node's."""
    from node_sdk import paths  # hashlib and friends: only dynamic nodes pay for them

    return paths.node_log(paths.flow_home(), run_id, node_id)


def install(own_file: Path | None = None) -> None:
    """Route the program's logging into the node's log, keeping its own configuration.

    A program that configured logging (`basicConfig`, its own handlers) keeps it: flow
    adds no handler that prints, so no record shows twice. Otherwise flow's handler is
    `logging.lastResort`, the handler logging uses only while no other is configured, so
    a `basicConfig` after `Node()` still takes effect. The root level is set (from
    `FLOW_LOG_LEVEL`, default INFO) only while the program has left it at logging's
    default. `own_file`: a dynamic node's log file, which gets every record too.
    """
    root = logging.getLogger()
    configured = bool(root.handlers)
    if isinstance(logging.lastResort, FlowLogHandler | RunLogHandler) or any(
        isinstance(h, RunLogHandler) for h in root.handlers
    ):
        return  # once per process
    if root.level == logging.WARNING:  # logging's default: nobody chose a level
        root.setLevel(level_from_env())
    if own_file is None:
        if not configured:
            logging.lastResort = FlowLogHandler()
        return
    log_file = RunLogFile(own_file)
    if configured:  # the program's handlers show the records; flow only stores them
        root.addHandler(RunLogHandler(log_file, show=False))
    else:
        logging.lastResort = RunLogHandler(log_file, show=True)
