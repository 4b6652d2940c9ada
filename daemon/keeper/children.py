"""One node process of a run keeper, with its pipes, and signalling its process group."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol

import attrs

from daemon.keeper import affinity
from daemon.keeper.forking import Forker
from daemon.keeper.logs import NodeLog
from daemon.keeper.reaper import die_with_this_thread
from daemon.keeper.stdout_output import StdoutOutput, log_entry_value
from daemon.model.keeper_messages import NodeState
from daemon.model.logformat import (
    LOG_MARKER,
    LogRecord,
    TracebackLevels,
    level_number,
    record_from_output,
)
from daemon.model.stderr_tail import TAIL_LINES, cut_line

MAX_LINE = 64 * 1024
_MARKER = LOG_MARKER.encode()

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Child:
    """One node process and its pipes."""

    node: str
    generation: int
    process: NodeProcess
    pidfd: int
    log: NodeLog
    stdout_output: StdoutOutput | None
    sends_records: bool = False  # `send_logs_as`: log records go out, not stdout lines
    records_level: int = 0  # the lowest level of the records sent
    pipes: dict[int, str] = attrs.field(factory=dict)  # fd -> "stdout" / "stderr"
    files: dict[int, IO[bytes]] = attrs.field(factory=dict)  # fd -> its owning file object
    pending: dict[int, bytes] = attrs.field(factory=dict)
    tail: collections.deque[str] = attrs.field(
        factory=lambda: collections.deque(maxlen=TAIL_LINES)
    )
    code: int | None = None
    kill_at: float | None = None  # group SIGKILL deadline once the leader has exited
    reported: bool = False
    unhandled: int = 0  # lines of it that could not be handled (`line`)
    tracebacks: TracebackLevels = attrs.field(factory=TracebackLevels)  # on its stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self, fd: int, chunk: bytes) -> list[bytes]:
        """The whole lines `chunk` completes on pipe `fd` (an empty chunk: the pipe's end,
        which completes the last one); a line longer than MAX_LINE is cut, so it is bounded."""
        data = self.pending.pop(fd, b"") + chunk
        if not chunk:
            return [data] if data else []
        *lines, rest = data.split(b"\n")
        # a record (at most 60 KiB) written into a half-printed line still to be ended
        # makes it longer: room for both, or its cut pieces would be lines (and data)
        limit = 2 * MAX_LINE if len(rest) > MAX_LINE and _MARKER in rest else MAX_LINE
        while len(rest) > limit:  # a huge line with no newline: cut it
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self.pending[fd] = rest
        return lines

    def take(self, fd: int, chunk: bytes, now: float) -> None:
        """What one read of pipe `fd` at `now` gave (empty: its end): its whole lines, each
        stamped `now`, into the log in one write. One stamp a read, taken before it, so a
        line is never stamped later than a record the node wrote after it (stamps taken
        line by line fell behind by as long as a chunk took)."""
        stream = self.pipes[fd]
        raws = self.lines(fd, chunk)
        if stream == "stdout":
            raws = self._unmixed(fd, raws, final=not chunk)
        records = [self.line(stream, raw, now) for raw in raws]
        self.log.write_all([record for record in records if record is not None])

    def _unmixed(self, fd: int, raws: list[bytes], *, final: bool) -> list[bytes]:
        """Stdout lines with each logging record taken out of a line it was written into:
        `print` writes its text and its newline apart, so another thread's record can land
        between them (`text<record>\n` then `\n`). The record is a line of its own; the
        text goes before the next line, which the print's newline ends."""
        out: list[bytes] = []
        carry = b""
        for raw in raws:
            raw = carry + raw
            at = raw.find(_MARKER, 1)
            if at < 0:
                out.append(raw)
                carry = b""
                continue
            out.append(raw[at:])
            carry = raw[:at]
        if carry and final:  # the pipe's end: no line is coming to end it
            out.append(carry)
        elif carry:  # the next line is still to come: the text goes before it
            self.pending[fd] = carry + self.pending.get(fd, b"")
        return out

    def line(self, stream: str, raw: bytes, now: float) -> LogRecord | None:
        """One whole line of its `stream`, read at `now`: its log record (and its stderr
        tail), sent on its `send_stdout_as` or `send_logs_as` output, if it has one. What
        the node wrote is untrusted: a line that cannot be handled is dropped (None,
        counted, the first logged), never the end of the keeper and so of every node."""
        try:
            return self._line(stream, raw, now)
        except Exception as exc:
            if not self.unhandled:
                log.warning("node %s: a %s line dropped: %r", self.node, stream, exc)
            self.unhandled += 1
            self.log.dropped += 1
            return None

    def _line(self, stream: str, raw: bytes, now: float) -> LogRecord:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        record = record_from_output(stream, text, now)
        if record.stream == "stderr" and (level := self.tracebacks.level(text)) is not None:
            record = attrs.evolve(record, level=level)
        is_record = record.stream == "log"  # the SDK's logging: on stdout, with its prints
        if stream == "stderr" or is_record:  # what a failed node's ending shows
            self.tail.append(cut_line(record.message))  # the whole line is in its log
        output = self.stdout_output
        if output is not None and self.sends_records:
            if is_record and level_number(record) >= self.records_level:
                output.send_line(log_entry_value(self.node, record))
        elif output is not None and stream == "stdout" and not is_record:
            output.send_line(record.message)  # its prints only: a record is not data
        return record


def node_states(children: Mapping[str, Child]) -> dict[str, NodeState]:
    """What a daemon that attaches is told of each node (alive until its exit is reported)."""
    return {
        node: NodeState(
            generation=c.generation,
            pid=c.pid,
            code=c.code if c.reported else None,
            alive=not c.reported,
            tail=tuple(c.tail),  # bounded as a NodeState is made (keeper_messages)
        )
        for node, c in children.items()
    }


class NodeProcess(Protocol):
    """What the keeper uses of a node's process: a `Popen`, or a node its fork server
    forked (daemon/keeper/forking.py), which is the keeper's child all the same."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | Any: ...
    @property
    def stdout(self) -> IO[bytes] | None: ...
    @property
    def stderr(self) -> IO[bytes] | None: ...
    def poll(self) -> int | None: ...
    def wait(self) -> int: ...


def start_node(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    in_thread: bool,
    forker: Forker | None = None,
    cpus: Sequence[int] | None = None,
) -> NodeProcess:
    """A node's process: its own session and group, stdout and stderr piped to the keeper;
    under `flow run` (a keeper thread) it dies with that thread. Forked by the run's fork
    server when `forker` can, else exec'd. OSError or ValueError."""
    forked = None if forker is None else forker.fork(argv, env, cwd, in_thread, cpus)
    if forked is not None:
        return forked
    with affinity.inherited(cpus):
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_this_thread() if in_thread else None,
        )


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_node(child: Child, sig: signal.Signals) -> bool:
    """Signal a live node's process group; False when it is gone.

    A forked node has no group of its own until it has left the fork server's (its
    `setsid`, node_sdk/forkchild.py, after it was handed to the keeper): a stop that comes
    meanwhile (a run stopped as it starts) found no group and was lost, and the node ran on
    to its SIGKILL. The process itself gets it then, through its pidfd, which no other
    process can take over; it has started nothing of its own yet.
    """
    if signal_group(child.pid, sig):
        return True
    if child.code is not None:
        return False
    try:
        signal.pidfd_send_signal(child.pidfd, sig)
    except OSError:  # it has just exited: nothing left to signal
        return False
    return True


def stop_children(children: Sequence[Child], kill_after: float) -> None:
    """SIGTERM each child's group, SIGKILL what is left of them after `kill_after` s."""
    for child in children:
        signal_node(child, signal.SIGTERM)
    deadline = time.monotonic() + kill_after
    live = list(children)
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [c for c in live if c.process.poll() is None]
    for child in children:  # the leader may be gone, what it left in its group not
        signal_group(child.pid, signal.SIGKILL)
