"""`daemon.log`'s handler: what a full disk refused is kept (bounded) and written later.

A plain FileHandler loses every line written while `FLOW_HOME` is full, the line saying
why included. This one writes each record with one `os.write` on an O_APPEND descriptor;
what fails stays queued (the newest HELD lines, and a count of the older ones dropped)
and goes out, in order, with the next record that can be written.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from pathlib import Path

HELD = 500


class PatientFileHandler(logging.Handler):
    """Appends records to a file; keeps them while the file cannot be written."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.held: collections.deque[bytes] = collections.deque()
        self.lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        if len(self.held) >= HELD:
            self.held.popleft()
            self.lost += 1
        self.held.append(line)
        self.write_held()

    def write_held(self) -> None:
        # ENOSPC, EIO...: what is held stays for the next record
        with contextlib.suppress(OSError):
            if self.lost:
                os.write(
                    self.fd, f"... {self.lost} log lines lost: the log was not writable\n".encode()
                )
                self.lost = 0
            while self.held:
                written = os.write(self.fd, self.held[0])
                if written < len(self.held[0]):
                    self.held[0] = self.held[0][written:]  # the rest once there is room
                    continue
                self.held.popleft()

    def close(self) -> None:
        self.write_held()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        super().close()
