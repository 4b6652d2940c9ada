"""Follow node log files as they grow, rotation included; shared by `logs -f`, `start`, `run`.

`LogFollower` is plain file tailing (no daemon): the foreground `flow run` can use it with
the files it writes. `follow_run` drives it against a daemon run until the run ends.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO

from daemon.model.logformat import (
    LogRecord,
    format_lines,
    json_line,
    level_number,
    line_parts,
    merge_times,
    parse_line,
    strip_ansi,
)

if TYPE_CHECKING:
    from cli.bulk_lines import BulkLines, Shown

Entry = tuple[str, LogRecord]  # (node id, record)
Emit = Callable[[Sequence[Entry]], None]  # prints a batch of records
AWAY_POLL_S = 0.5  # how often the files and the daemon are looked at while it is gone


class _Tail:
    """One file read incrementally; notices replacement (rename rotation) and truncation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._partial = b""

    def read(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        lines: list[str] = []
        if self._handle is not None:
            if st is None or (st.st_dev, st.st_ino) != self._ident:
                lines += self._drain()  # the rest of the file rotated away, then the new one
                lines += self.flush()
                self._close()
            elif st.st_size < self._handle.tell():
                self._handle.seek(0)  # truncated in place: start again at the top
                self._partial = b""
        if self._handle is None and st is not None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - held across polls
            except FileNotFoundError:
                return lines
            st = os.fstat(self._handle.fileno())
            self._ident = (st.st_dev, st.st_ino)
        if self._handle is not None:
            lines += self._drain()
        return lines

    def _drain(self) -> list[str]:
        assert self._handle is not None
        data = self._handle.read()
        if not data:
            return []
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [c.decode("utf-8", "replace") for c in complete]

    def flush(self) -> list[str]:
        """A last line without its newline, when the writer is done."""
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace")] if rest else []

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle, self._ident = None, None

    def close(self) -> None:
        self._close()


class LogFollower:
    """Tails each node's log file; `poll()` returns new records, merged by time."""

    def __init__(self, files: Mapping[str, str | Path] | None = None) -> None:
        self._tails: dict[str, _Tail] = {}
        for node, path in (files or {}).items():
            self.add(node, path)

    @property
    def nodes(self) -> list[str]:
        return list(self._tails)

    def add(self, node: str, path: str | Path) -> None:
        if node not in self._tails:
            self._tails[node] = _Tail(Path(path))

    def poll(self, *, final: bool = False) -> list[tuple[str, LogRecord]]:
        """Records written since the last poll; `final` also returns unterminated lines."""
        batch: list[tuple[float, str, LogRecord]] = []
        for node, tail in self._tails.items():
            lines = tail.read() + (tail.flush() if final else [])
            records = [parse_line(line) for line in lines]
            batch += zip(merge_times(records), itertools.repeat(node), records, strict=False)
        if len(self._tails) > 1:
            batch.sort(key=lambda item: item[0])  # stable: one file's order is kept
        return [(node, record) for _, node, record in batch]

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()


class LinePrinter:
    """Prints records the one way `flow logs`, `flow start` and `flow run` show them.

    Filters: `since` (a time) and `level` (a minimum, see `level_number`) take or leave
    a whole record; `grep` keeps the shown lines that contain it, so it matches the node,
    time, level and logger as well as the text. `as_json` prints one object per record.
    """

    def __init__(
        self,
        nodes: Iterable[str],
        *,
        grep: str | None = None,
        since: float | None = None,
        level: int | None = None,
        as_json: bool = False,
    ) -> None:
        self.width = max((len(n) for n in nodes), default=0)
        self.grep = grep
        self.since = since
        self.level = level
        self.as_json = as_json
        self._bulk: BulkLines | None = None

    def accepts(self, record: LogRecord) -> bool:
        if self.since is not None and record.time and record.time < self.since:
            return False
        return self.level is None or level_number(record) >= self.level

    def shown(self, entries: Iterable[Entry]) -> list[Shown]:
        """The lines `entries` show as once filtered, in order: each record's lines, or
        its one JSON line."""
        from cli import render

        lines: list[Shown] = []
        keep_ansi = render.out.is_terminal
        for node, record in entries:
            if not self.accepts(record):
                continue
            self.width = max(self.width, len(node))
            if self.as_json:  # the record whole, when any line it shows as holds `grep`
                shown = (strip_ansi(line) for line in format_lines(record, node))
                if self.grep is None or any(self.grep in line for line in shown):
                    lines.append((node, record, json_line(node, record, keep_ansi=keep_ansi)))
                continue
            for part in line_parts(record, node, self.width):
                if self.grep is None or self.grep in render.plain(part):
                    lines.append((node, record, part))
        return lines

    def write_shown(self, lines: Sequence[Shown]) -> None:
        """Print lines `shown` gave, in one write for the most of them (bulk_lines.py)."""
        if self._bulk is None:
            from cli import render
            from cli.bulk_lines import BulkLines

            self._bulk = BulkLines(render.out)
        self._bulk.write_shown(lines)

    def __call__(self, entries: Sequence[Entry]) -> None:
        self.write_shown(self.shown(entries))


class Interrupts:
    """Counts Ctrl-C presses (and whichever other `signals`) instead of raising, so a loop
    can turn them into requests.

    The `limit`-th press raises KeyboardInterrupt after all, unless `on_held` is set: while
    the caller cannot yet act on a press (an attached `flow start` waiting for the run's
    id), every press is only counted, for it to act on once it can, and `on_held` says so
    at once with the signal and the press number.
    """

    def __init__(
        self, limit: int = 3, signals: tuple[signal.Signals, ...] = (signal.SIGINT,)
    ) -> None:
        self.limit = limit
        self.signals = signals
        self.count = 0
        self.on_held: Callable[[signal.Signals, int], None] | None = None
        self._seen = 0
        self._old: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self._old[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, old in self._old.items():
            signal.signal(number, old)
        self._old = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.on_held is not None:  # held: acted on once the caller can
            self.on_held(signal.Signals(signum), self.count)
        elif self.count >= self.limit:
            raise KeyboardInterrupt

    def new_presses(self) -> list[int]:
        """The press numbers (1, 2, ...) seen since the last call."""
        fresh = list(range(self._seen + 1, self.count + 1))
        self._seen = self.count
        return fresh


def follow_run(
    run_id: str,
    follower: LogFollower,
    emit: Emit,
    *,
    home: Path | None = None,
    node: str | None = None,
    interrupts: Interrupts | None = None,
    interval: float = 0.1,
) -> dict[str, Any]:
    """Emit the run's log records until it ends; return its final RunInfo.

    With `interrupts`, the first Ctrl-C asks the daemon to stop the run, the second to
    kill it; following goes on until the run has ended.
    """
    from cli import render
    from cli.client import call
    from cli.errors import UNREACHABLE, CliError, DaemonUnreachable
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import Logs, Wait

    refreshed = time.monotonic()
    away = False
    degraded: str | None = None
    failed: set[str] = set()  # the nodes said to have failed while the run went on
    try:
        while True:
            emit(follower.poll())
            for press in interrupts.new_presses() if interrupts else []:
                _stop_in_background(run_id, force=press > 1, home=home)
            try:
                reply = call(
                    Wait(run=run_id, timeout=Seconds(interval)), timeout=interval + 10.0,
                    home=home,
                )  # fmt: skip
            except DaemonUnreachable:
                # the daemon died; the run's keeper serves its nodes on for the grace, and
                # their log files grow: followed until a daemon is back or they have ended
                if not away:
                    render.warning("the flow daemon went away: following the log files "
                                   "until it is back or the run's nodes have ended")
                    away = True
                if not _nodes_alive(run_id, home):
                    emit(follower.poll(final=True))
                    raise CliError("the flow daemon went away and the run's nodes have "
                                   "ended: `flow up` records how", UNREACHABLE) from None
                time.sleep(AWAY_POLL_S)
                continue
            if away:
                render.info("the flow daemon is back: following the run through it")
                away = False
            now_degraded = reply.run.get("degraded")
            if now_degraded and _cause(now_degraded) != _cause(degraded):
                # side work failed: say so now, not only at the end
                render.warning(f"degraded: {now_degraded}")  # once per cause, not per tally
            degraded = now_degraded
            if not reply.done:
                _say_failures(reply.run, failed)
            if reply.done:
                emit(follower.poll(final=True))
                return reply.run
            if time.monotonic() - refreshed > 2.0:
                # dynamic nodes may attach later: pick up log files that appeared; the
                # daemon keeps forwarding other machines' logs while we ask again
                refreshed = time.monotonic()
                files = call(Logs(run=run_id, node=node, follow=True), home=home).files
                for name, path in files.items():
                    follower.add(name, path)
    finally:
        follower.close()


def _say_failures(info: dict[str, Any], said: set[str]) -> None:
    """A line for each node that failed for good since the last look while another still
    runs (a node's traceback alone looked like a hang: the run goes on)."""
    from cli import render
    from cli.endings import failed_line
    from daemon.model.run_rows import failed_while_going

    for node in failed_while_going(info.get("nodes") or [], said):
        render.warning(failed_line(node))


def _nodes_alive(run_id: str, home: Path | None) -> bool:
    """Whether a node process of the run is alive, by the pids `state.db` has for it."""
    from cli import client
    from cli.errors import CliError
    from cli.offline_runs import resolve
    from daemon.model.pids import alive

    try:
        run = resolve(home or client.home_path(), run_id)
    except CliError:
        return False
    return any(node.get("pid") and alive(int(node["pid"])) for node in run["nodes"])


def _cause(degraded: str | None) -> str | None:
    """`logs: No space left on device (12 log lines dropped)` -> its cause, without the tally."""
    if degraded is None:
        return None
    return re.sub(r" \(\d+ log lines dropped\)$", "", degraded)


def _stop_in_background(run_id: str, *, force: bool, home: Path | None) -> None:
    """Send `stop` without blocking the follow loop (the reply may wait for the stop)."""
    from cli import render

    if force:
        render.warning("killing the run (Ctrl-C again to detach)")
    else:
        render.warning("stopping the run (Ctrl-C again to kill it)")

    def send() -> None:
        from cli.client import call
        from cli.errors import CliError
        from daemon.model.requests_base import Seconds
        from daemon.model.requests_runs import Stop

        try:
            grace = Seconds(0.0) if force else None
            call(Stop(run=run_id, grace=grace, force=force), timeout=60.0, home=home)
        except CliError as exc:
            if getattr(exc, "kind", None) != "RunNotActive":
                render.warning(f"stop failed: {exc.message}")

    threading.Thread(target=send, name="flow-stop", daemon=True).start()
