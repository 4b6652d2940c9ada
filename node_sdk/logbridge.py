"""Python `logging` -> structured lines on stderr that the daemon keeps as log records.

A record is one line: `LOG_MARKER` then JSON with `t` (epoch s), `lvl`, `lg` (logger),
`m` (message, with any traceback). `daemon/model/logformat.py` reads them; node_sdk imports
nothing of ours, so the marker is duplicated here (a unit test checks the two are equal).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Final, TextIO

LOG_MARKER: Final = "\x1eFLOWLOG"
LEVEL_ENV: Final = "FLOW_LOG_LEVEL"


class FlowLogHandler(logging.Handler):
    """Writes each record as one marked JSON line on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            if record.stack_info:
                message = f"{message}\n{record.stack_info}"
            line = json.dumps(
                {"t": record.created, "lvl": record.levelname, "lg": record.name, "m": message},
                ensure_ascii=False,
            )
            stream = self._stream or sys.stderr  # looked up late: tests swap sys.stderr
            stream.write(f"{LOG_MARKER}{line}\n")
            stream.flush()
        except Exception:
            self.handleError(record)


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


def install() -> FlowLogHandler:
    """Route the root logger into the node's log (once per process)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, FlowLogHandler):
            return handler
    handler = FlowLogHandler()
    root.addHandler(handler)
    root.setLevel(level_from_env())
    return handler
