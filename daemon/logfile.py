"""`daemon.log`'s handler: what a full disk refused is kept (bounded) and written later;
the file is rotated at MAX_BYTES.

A plain FileHandler loses every line written while `FLOW_HOME` is full, the line saying
why included. This one writes each record with one `os.write` on an O_APPEND descriptor;
what fails stays queued (the newest HELD lines, and a count of the older ones dropped)
and goes out, in order, with the next record that can be written. Once the file holds
MAX_BYTES it becomes `daemon.log.1` (the one before is replaced) and a new one is begun:
a long-lived daemon's log, or a flood of warnings, takes at most twice that.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from pathlib import Path

HELD = 500
MAX_BYTES = 16 << 20  # as a node's log (log_max_bytes' default)


class PatientFileHandler(logging.Handler):
    """Appends records to a file; keeps them while the file cannot be written."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.renamed = False  # rotated, and the new file not made yet
        self.held: collections.deque[bytes] = collections.deque()
        self.lost = 0

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _write(self, data: bytes) -> int:
        written = os.write(self.fd, data)
        self.size += written
        if self.size >= self.max_bytes:
            self._rotate()
        return written

    def _rotate(self) -> None:
        """daemon.log -> daemon.log.1, and a new daemon.log; what fails (a full disk) is
        tried again after another `max_bytes`, the file written on meanwhile."""
        self.size = 0
        if not self.renamed:
            try:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except OSError:
                return
            self.renamed = True
        try:
            fd = self._open()
        except OSError:
            return  # the renamed file's descriptor is written on
        os.close(self.fd)
        self.fd, self.renamed = fd, False

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
                self._write(f"... {self.lost} log lines lost: the log was not writable\n".encode())
                self.lost = 0
            while self.held:
                written = self._write(self.held[0])
                if written < len(self.held[0]):
                    self.held[0] = self.held[0][written:]  # the rest once there is room
                    continue
                self.held.popleft()

    def close(self) -> None:
        self.write_held()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        super().close()
