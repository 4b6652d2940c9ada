"""A member's side of `flow logs -f` across machines: the new lines of followed nodes' logs,
forwarded to the coordinator while it keeps asking (docs/cluster.md, "Logs").

Bounded three ways: the bytes per second of every followed log together (a token bucket),
the link's own queue (a chunk waits while the link's outbox holds more than a few
messages, so log lines never crowd out a run's relayed messages), and how far a log may be
behind (past it, the forwarder skips ahead and one line says how much). While the link is
down nothing is read, so a healed partition resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

import attrs
import trio

from daemon.model.cluster_messages import LOG_TAIL_BYTES, MAX_CARRY_BYTES, Carry, encode
from daemon.model.logformat import LogRecord
from node_sdk import paths

FORWARD_BYTES_PER_S: Final = 64 * 1024  # every followed log of this machine together
CHUNK_BYTES: Final = 16 * 1024  # of log text read per relayed message (split if it grows)
BEHIND_MAX: Final = 1024 * 1024  # a log further behind skips ahead to its last lines
LEASE_S: Final = 10.0  # a follow the coordinator has not renewed for this long ends
MAX_FOLLOWS: Final = 64  # logs followed at once on this machine
TICK_S: Final = 0.1


@attrs.define(eq=False)
class _Followed:
    """One node's log being forwarded: where its reading stands."""

    path: Path
    lease_until: float  # trio clock
    handle: BinaryIO | None = None
    ident: tuple[int, int] | None = None
    from_tail: bool = True  # the first read starts at the log's last LOG_TAIL_BYTES
    pending: list[str] = attrs.field(factory=list)  # chunks read, not sent yet
    skipped: int = 0  # bytes not forwarded since the last note
    mid_line: bool = False  # skipping the rest of a line longer than a chunk

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
        self.handle, self.ident = None, None


@attrs.define(eq=False)
class LogForwarder:
    """The logs this member forwards; `serve` runs it, `follow` starts or renews one."""

    home: Path
    machine: str
    send: Callable[[Carry], bool]  # straight onto the link: False (kept) while it is down
    room: Callable[[], bool]  # the link is up and its outbox is short
    follows: dict[tuple[str, str], _Followed] = attrs.field(factory=dict)  # (run, node)
    tokens: float = float(FORWARD_BYTES_PER_S)

    def follow(self, run_id: str, node_id: str, body: str) -> None:
        """`start` (its log's last lines first, at once: the coordinator waits for them) or
        `renew` from the coordinator. A renewal of a follow this machine has dropped (its
        lease ran out during a partition) resumes at the log's end, with a line saying
        lines may be missing."""
        key = (run_id, node_id)
        lease = trio.current_time() + LEASE_S
        followed = self.follows.get(key)
        if followed is not None and body != "start":
            followed.lease_until = lease
            return
        if followed is not None:  # started again (the coordinator's follow had ended)
            followed.close()
            del self.follows[key]
        if len(self.follows) >= MAX_FOLLOWS:
            refusal = self._note(f"not followed: this machine forwards at most {MAX_FOLLOWS} "
                                 "logs at once")  # fmt: skip
            self.send(Carry(run_id, "loglines", refusal, node_id))
            return
        followed = _Followed(paths.node_log(self.home, run_id, node_id), lease)
        if body != "start":
            followed.from_tail = False
            followed.pending.append(self._note(
                "log forwarding resumed: lines written meanwhile may be missing here"))  # fmt: skip
            with contextlib.suppress(OSError):
                followed.handle = followed.path.open("rb")
                followed.handle.seek(0, os.SEEK_END)
                st = os.fstat(followed.handle.fileno())
                followed.ident = (st.st_dev, st.st_ino)
        else:  # the first answer, which the coordinator waits for (maybe empty)
            followed.pending = _pieces(run_id, node_id, self._read(followed, LOG_TAIL_BYTES) or "")
        self.follows[key] = followed

    def flush(self, run_id: str, node_id: str) -> None:
        """The node has exited: forward its last lines now, before its exit is relayed (the
        coordinator's copy then holds them when the run ends). Up to a second's worth, past
        the link's queue bound and on credit: what is left goes at the pace after."""
        followed = self.follows.get((run_id, node_id))
        if followed is not None:
            self.tokens -= self._forward(run_id, node_id, followed,
                                         budget=FORWARD_BYTES_PER_S, room=True)  # fmt: skip

    async def serve(self) -> None:
        try:
            await self._pace()
        finally:
            for followed in self.follows.values():
                followed.close()

    async def _pace(self) -> None:
        last = trio.current_time()
        while True:
            await trio.sleep(TICK_S)
            now = trio.current_time()
            self.tokens = min(float(FORWARD_BYTES_PER_S),
                              self.tokens + (now - last) * FORWARD_BYTES_PER_S)  # fmt: skip
            last = now
            # each followed log gets an even share of the bytes this tick may send
            share = max(1024, int(self.tokens) // max(1, len(self.follows)))
            for key, followed in list(self.follows.items()):
                if now > followed.lease_until:
                    followed.close()
                    del self.follows[key]
                elif self.tokens > 0 and self.room():
                    self.tokens -= self._forward(*key, followed, budget=share, room=False)

    def _forward(self, run_id: str, node_id: str, followed: _Followed, *, budget: int,
                 room: bool) -> int:  # fmt: skip
        """Send what waits, then read and send up to `budget` bytes; the bytes sent."""
        sent = 0
        while budget > 0 and (room or self.room()):
            if not followed.pending:
                text = self._read(followed, min(budget, CHUNK_BYTES))
                if text is None:
                    break
                followed.pending.extend(_pieces(run_id, node_id, text))
            if not self.send(Carry(run_id, "loglines", followed.pending[0], node_id)):
                break
            size = len(followed.pending.pop(0))
            sent, budget = sent + size, budget - max(size, 1)
        return sent

    def _read(self, followed: _Followed, limit: int) -> str | None:
        """Whole lines of at most `limit` bytes (a note first when some were skipped); None
        when there is nothing new."""
        handle = self._open(followed)
        if handle is None:
            return None
        position = handle.tell()
        size = os.fstat(handle.fileno()).st_size
        if size < position:  # truncated in place: from its top again
            position = handle.seek(0)
        if size - position > BEHIND_MAX:
            followed.skipped += self._skip_to_tail(handle, size) - position
            position = handle.tell()
        data = handle.read(limit)
        if not data:
            self._rotated(followed)
            return None
        if followed.mid_line:  # the rest of a line too long to forward
            end = data.find(b"\n") + 1 or len(data)
            followed.skipped += end
            followed.mid_line = end == len(data) and not data.endswith(b"\n")
            handle.seek(position + end)
            return None
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) == CHUNK_BYTES:  # a line longer than a chunk: counted
            followed.skipped, followed.mid_line = followed.skipped + len(data), True
            return None
        handle.seek(position + cut)
        text = data[:cut].decode("utf-8", "replace")
        if followed.skipped and text:
            text = self._note(f"{followed.skipped} bytes of this log were not forwarded "
                              f"(over the {FORWARD_BYTES_PER_S // 1024} KiB/s bound or "
                              "too long a line)") + text  # fmt: skip
            followed.skipped = 0
        return text or None

    def _open(self, followed: _Followed) -> BinaryIO | None:
        if followed.handle is not None:
            return followed.handle
        try:
            followed.handle = followed.path.open("rb")
        except OSError:
            return None
        st = os.fstat(followed.handle.fileno())
        followed.ident = (st.st_dev, st.st_ino)
        if followed.from_tail:
            followed.from_tail = False
            self._skip_to_tail(followed.handle, st.st_size)
        return followed.handle

    @staticmethod
    def _skip_to_tail(handle: BinaryIO, size: int) -> int:
        """Position `handle` at the first line start of its last LOG_TAIL_BYTES."""
        if size <= LOG_TAIL_BYTES:
            return handle.seek(0)
        handle.seek(size - LOG_TAIL_BYTES)
        handle.readline()  # a cut first line is dropped
        return handle.tell()

    @staticmethod
    def _rotated(followed: _Followed) -> None:
        """At the end of the file read: when the log was renamed away (rotated), the next
        read starts on the new file, from its top."""
        try:
            st = os.stat(followed.path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) != followed.ident:
            followed.close()

    def _note(self, text: str) -> str:
        record = LogRecord(time.time(), "log", f"{text} (the whole log is on machine "
                           f"{self.machine})", level="WARNING", logger="flow")  # fmt: skip
        return record.to_json() + "\n"


def _pieces(run_id: str, node_id: str, text: str) -> list[str]:
    """`text` in pieces whose relayed message fits the link (JSON escapes can grow it)."""
    if len(encode(Carry(run_id, "loglines", text, node_id))) <= MAX_CARRY_BYTES:
        return [text]
    middle = text.rfind("\n", 0, len(text) // 2) + 1 or len(text) // 2
    return _pieces(run_id, node_id, text[:middle]) + _pieces(run_id, node_id, text[middle:])
