"""Writing node logs to `runs/<uuid>/logs/<node>.log`, rotated; auxiliary work (SPEC 7.3).

A write that fails (disk full, permission) never reaches the node or the run's result: the
line is counted as dropped, the run is marked degraded, and writing is retried later.
Node logs leave the last STORE_ROOM_BYTES of the state store's filesystem to the store:
a node that prints without pause would otherwise take the room a full disk's stop is
written in (daemon/run/store_reserve.py), and the stopped run would come back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import attrs

from daemon.model.keeper_messages import Spawn
from daemon.model.logformat import LogRecord
from daemon.model.once import OncePerKey
from daemon.model.settings import current as settings
from node_sdk import paths

log = logging.getLogger(__name__)

BACKUPS = 3
REOPEN_AFTER_S = 2.0
# how often an open log is looked at: a file (or the run's log folder) deleted while it is
# written would take every later line into a file no one can read
CHECK_GONE_S = 1.0

# what node logs leave free where the state store is: four times the store's reserve, the
# room with which the daemon makes that reserve again (store_reserve.SPARE_FACTOR)
STORE_ROOM_BYTES = 1024 * 1024
ROOM_CHECK_S = 1.0  # how often that room is looked at (one statvfs per home, not per line)
ROOM_CHECK_BYTES = STORE_ROOM_BYTES // 4  # and after this much was written since

Degrade = Callable[[str], None]
Tee = Callable[[str, LogRecord], None]


@attrs.define(eq=False)
class StoreRoom:
    """Whether the filesystem of a FLOW_HOME's state store has less than STORE_ROOM_BYTES
    free, looked at for every log of that home once per ROOM_CHECK_S, and whenever they
    wrote ROOM_CHECK_BYTES since (a node printing without pause writes megabytes a second)."""

    home: Path
    _short: bool = False
    _device: int = -1
    _checked_at: float = -math.inf
    _written: int = 0  # bytes written into the home's logs since the last look

    def short_for(self, folder: Path, nbytes: int) -> bool:
        """True while `nbytes` more of node logs in `folder` would take the store's last
        room (they are counted either way: a paused log looks again as often)."""
        now = time.monotonic()
        self._written += nbytes
        if now - self._checked_at >= ROOM_CHECK_S or self._written >= ROOM_CHECK_BYTES:
            self._checked_at, self._written = now, nbytes
            try:
                free = os.statvfs(self.home)
                self._short = free.f_bavail * free.f_frsize < STORE_ROOM_BYTES
                self._device = os.stat(self.home).st_dev
            except OSError:  # a home gone or unreadable: nothing to keep room for
                self._short = False
        if not self._short:
            return False
        # logs on a filesystem of their own (runs/ mounted apart) take none of it; a folder
        # not made yet is where its nearest existing parent is
        for place in (folder, *folder.parents):
            try:
                return os.stat(place).st_dev == self._device
            except OSError:
                continue
        return True


_ROOMS: dict[Path, StoreRoom] = {}  # by home: a keeper serves one


def store_room(log_path: Path) -> StoreRoom:
    """The store room of the home a node log is in (`<home>/runs/<run>/logs/<node>.log`)."""
    home = paths.home_of_node_log(log_path)
    room = _ROOMS.get(home)
    if room is None:
        room = _ROOMS[home] = StoreRoom(home)
    return room


@attrs.define(eq=False)
class NodeLog:
    """The log file of one node of one run."""

    path: Path
    node_id: str
    on_failure: Degrade
    tee: Tee | None = None
    max_bytes: int = attrs.field(factory=lambda: settings().log_max_bytes)
    dropped: int = 0
    _file: BinaryIO | None = None
    _size: int = 0
    _failed_at: float | None = None
    _causes: OncePerKey = attrs.field(factory=OncePerKey)  # a full disk fails every retry
    _unmarked: int = 0  # lines dropped since the log was last written
    _checked_at: float = 0.0  # when the open file was last looked at (CHECK_GONE_S)
    room: StoreRoom = attrs.field(
        default=attrs.Factory(lambda self: store_room(self.path), takes_self=True)
    )

    @classmethod
    def for_spawn(cls, message: Spawn, on_failure: Degrade, tee: Tee | None) -> NodeLog:
        """The log of the generation `message` spawns, at the node's own rotation size."""
        node_log = cls(Path(message.log), message.node, on_failure=on_failure, tee=tee)
        if message.log_max_bytes is not None:
            node_log.max_bytes = message.log_max_bytes
        return node_log

    def write_all(self, records: list[LogRecord]) -> None:
        """Append `records` (what one read of a pipe held) with one write and one flush
        (a flush a line cost the keeper a syscall a line), rotating where one would pass
        `max_bytes` (in bytes as written, never an empty file); what a failed write took,
        whole lines only, is counted as dropped."""
        if not records:
            return
        if self.tee is not None:
            for record in records:
                try:
                    self.tee(self.node_id, record)
                except Exception as exc:  # a broken terminal must not stop the node
                    self.on_failure(f"streaming: {exc}")
        lines = [self._fitted(record) for record in records]
        if self.room.short_for(self.path.parent, sum(map(len, lines))):
            self._drop(len(lines))
            self.on_failure(f"logs: paused while less than {STORE_ROOM_BYTES >> 20} MiB is "
                            "free where the state store is")  # fmt: skip
            return
        written = 0
        try:
            self._check_gone()
            handle = self._open()
            if handle is None:
                self._drop(len(lines))
                return
            if self._unmarked:  # writing again: say first what was lost meanwhile
                word = "line" if self._unmarked == 1 else "lines"
                note = LogRecord(time.time(), "log", f"{self._unmarked} log {word} dropped",
                                 level="WARNING", logger="flow")  # fmt: skip
                lines[0] = _encoded(note) + lines[0]
            while written < len(lines):
                if self._size and self._size + len(lines[written]) > self.max_bytes:
                    handle = self._rotate()
                end, size = written + 1, self._size + len(lines[written])
                while end < len(lines) and size + len(lines[end]) <= self.max_bytes:
                    size += len(lines[end])
                    end += 1
                self._put(handle, lines[written:end])
                written = end
                self._unmarked = 0
        except OSError as exc:
            self._fail(exc, len(lines) - written)

    def note_restart(self, generation: int, last: int, code: int | None) -> None:
        """The first line of a node's next generation, saying how the last one (`last`,
        ended with `code`) ended: in `flow run`'s output and `flow logs`, where one
        generation ends and the next begins."""
        if code is None:
            ended = "ended"
        elif code < 0:
            try:
                ended = f"ended by {signal.Signals(-code).name}"
            except ValueError:  # a signal without a name (SIGRTMIN + n)
                ended = f"ended by signal {-code}"
        else:
            ended = f"exited {code}"
        said = f"restarted as generation {generation} (generation {last} {ended})"
        level = "INFO" if code == 0 else "WARNING"
        self.write_all([LogRecord(time.time(), "log", said, level, "flow")])

    def _check_gone(self) -> None:
        """A log file deleted while open (its run's folder removed) is closed, to be made
        again with its folder by the next `_open`; the run is marked degraded, since what
        was written since is lost."""
        now = time.monotonic()
        if self._file is None or now - self._checked_at < CHECK_GONE_S:
            return
        self._checked_at = now
        if os.fstat(self._file.fileno()).st_nlink:
            return
        self.close()
        log.warning("log %s was deleted while written: made again", self.path)
        self.on_failure(f"logs: {self.path} was deleted while written (made again; lines "
                        f"of up to {CHECK_GONE_S:g} s before lost)")  # fmt: skip

    def _put(self, handle: BinaryIO, lines: list[bytes]) -> None:
        data = b"".join(lines)
        handle.write(data)
        handle.flush()
        self._size += len(data)

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._unmarked += count

    def _fitted(self, record: LogRecord) -> bytes:
        """`record`'s line, in bytes as written; a line that alone is over `max_bytes` has
        its message cut to fit (MAX_LINE bytes of emoji or control characters take 4 or 6
        times as many in JSON), so no file is over the setting."""
        line = _encoded(record)
        message = record.message
        while len(line) > self.max_bytes and message:
            # as many characters as the bytes left would hold at this line's bytes per one
            message = message[: len(message) * max(0, self.max_bytes - 128) // len(line)]
            cut = f"{message} [… cut: over the log's {self.max_bytes} bytes]"
            line = _encoded(attrs.evolve(record, message=cut))
        return line

    def _open(self) -> BinaryIO | None:
        if self._file is not None:
            return self._file
        if self._failed_at is not None and time.monotonic() - self._failed_at < REOPEN_AFTER_S:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()
        self._failed_at = None
        return self._file

    def _rotate(self) -> BinaryIO:
        self.close()
        for index in range(BACKUPS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        handle = self._open()
        assert handle is not None  # _failed_at was clear: _open opens
        return handle

    def _fail(self, exc: OSError, lines: int) -> None:
        self._drop(lines)
        self.close()
        # a line the disk took only part of is cut off again: the log holds whole lines
        with contextlib.suppress(OSError):
            if self.path.stat().st_size > self._size:
                os.truncate(self.path, self._size)
        self._failed_at = time.monotonic()
        log.log(self._causes.level(exc.strerror or str(exc)), "log %s: %s", self.path, exc)
        self.on_failure(f"logs: {exc.strerror or exc}")

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _encoded(record: LogRecord) -> bytes:
    """One line of the log file as written: its size is what `log_max_bytes` bounds."""
    return (record.to_json() + "\n").encode("utf-8", errors="replace")
