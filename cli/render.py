"""Terminal output: one Console for stdout, one for stderr; colour on a TTY, plain when piped.

Import this module only when printing: it imports rich.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from cli.terminal_text import displayable
from daemon.model.logformat import LineParts, LogRecord


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's own raises SystemExit(1), which ends a thread silently (`flow run` prints
        # from a thread); the reader left: say nothing more, and let the caller decide
        self.quiet = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)
        raise BrokenPipeError


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)


def silence_terminal() -> None:
    """stdout and stderr, where they are the terminal, to /dev/null: it closed (SIGHUP),
    and a write to it would fail (EIO) in whichever thread made it. A file or a pipe
    keeps what is written to it."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for console, fd in ((out, 1), (err, 2)):
                # not isatty(): a terminal that hung up answers its ioctl with EIO
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    console.quiet = True
                    os.dup2(devnull, fd)
        finally:
            os.close(devnull)


STATUS_STYLES = {
    "starting": "cyan",
    "pending": "cyan",
    "running": "green",
    "dynamic": "blue",
    "succeeded": "bold green",
    "stopped": "yellow",
    "failed": "bold red",
    "killed": "bold red",
    "lost": "bold red",
    "removed": "dim",
}
# the head of a log record (time, level, logger) by its level
LEVEL_STYLES = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}
# readable on dark and light backgrounds; red is kept for errors
_NODE_COLOURS = (
    "cyan",
    "magenta",
    "green",
    "blue",
    "yellow",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_blue",
    "dark_orange",
)


def error(message: str) -> None:
    """`error: message` in red on stderr."""
    err.print(Text(f"error: {message}", style="bold red"))


def warning(message: str) -> None:
    """`warning: message` in yellow on stderr."""
    err.print(Text(f"warning: {message}", style="yellow"))


def info(message: str) -> None:
    """A plain line on stdout (no markup: names may hold brackets)."""
    out.print(Text(message))


def node_colour(name: str) -> str:
    """A colour per node name, stable across runs and processes."""
    return _NODE_COLOURS[zlib.crc32(name.encode()) % len(_NODE_COLOURS)]


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def prefixed(node: str, line: str, width: int = 0) -> Text:
    """`node | line` with the prefix coloured per node."""
    text = Text(f"{node:<{width}} | ", style=node_colour(node))
    text.append_text(_node_text(line))  # a node's text: nothing a terminal acts on
    return text


def log_line(node: str, record: LogRecord, part: LineParts) -> Text:
    """One line of a node's log record (`line_parts`) as `flow run`, `flow start` and
    `flow logs` all print it (bulk_lines.py prints most of them without rich, the same).

    The `node | ` prefix is coloured per node; a node's own ANSI colours become rich
    styles, so they show on a terminal and are left out when stdout is piped.
    """
    text = Text()  # not Text(prefix, style=...): that would colour the whole line
    text.append(part.prefix, style=node_colour(node))
    # a record's level and logger are the node's text too
    text.append(_node_text(part.head).plain, style=LEVEL_STYLES.get(str(record.level), ""))
    text.append_text(_node_text(part.text))
    return text


def plain(part: LineParts) -> str:
    """What a `log_line` reads as, without its styles (a node's colours too)."""
    return part.prefix + _node_text(part.head).plain + _node_text(part.text).plain


def _node_text(text: str) -> Text:
    """A node's own text: its colours as styles, nothing else a terminal would act on."""
    shown = text if text.isprintable() else displayable(text)
    return Text.from_ansi(shown) if "\x1b" in shown else Text(shown)


Cell = str | Text


def table(headers: Sequence[str], rows: Sequence[tuple[Sequence[Cell], Sequence[Cell]]]) -> None:
    """Aligned columns with a bold header; each row may carry note lines printed under it.

    Plain whitespace columns (no box characters) so piped output stays greppable.
    """
    widths = [len(h) for h in headers]
    for cells, _ in rows:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], len(cell.plain if isinstance(cell, Text) else cell))
    out.print(_row(list(headers), widths, style="bold"))
    for cells, notes in rows:
        out.print(_row(list(cells), widths))
        for note in notes:
            out.print(Text("  ").append_text(note if isinstance(note, Text) else Text(note)))


def _row(cells: list[Cell], widths: list[int], style: str = "") -> Text:
    line = Text(style=style)
    for i, cell in enumerate(cells):
        text = cell if isinstance(cell, Text) else Text(cell)
        line.append_text(text)
        if i < len(cells) - 1:
            line.append(" " * (widths[i] - len(text.plain) + 2))
    return line


def node_counts(nodes: Sequence[dict[str, Any]]) -> Text:
    """`3 running` or `2 running, 1 failed`, coloured per status."""
    counts: dict[str, int] = {}
    for node in nodes:
        status = "removed" if node.get("removed") else str(node.get("status"))
        counts[status] = counts.get(status, 0) + 1
    text = Text()
    for i, (status, n) in enumerate(counts.items()):
        if i:
            text.append(", ")
        text.append(f"{n} {status}", style=STATUS_STYLES.get(status, ""))
    return text if counts else Text("0")


def node_failure(node: dict[str, Any], forced: bool = False) -> str | None:
    """`node X exited 3: <last stderr line>` for a failed node, else None; in the words of
    `endings.node_ending`, as every command says how a node ended."""
    from cli.endings import node_ending

    if node.get("status") not in ("failed", "killed"):
        return None
    line = f"node {node.get('id')} {node_ending(node, forced)}"
    tail = [t for t in node.get("stderr_tail") or [] if t.strip()]
    return f"{line}: {displayable(tail[-1])}" if tail else line


def short_ids(ids: Sequence[str], least: int = 8) -> dict[str, str]:
    """The shortest prefixes (at least `least` chars) that tell these ids apart.

    UUIDv7s begin with a timestamp, so runs started within a minute share 8 chars.
    """
    width = least
    while len({i[:width] for i in ids}) < len(set(ids)) and width < max(map(len, ids)):
        width += 1
    return {i: i[:width] for i in ids}


def run_label(run: dict[str, Any], short: str | None = None) -> str:
    """`demo (0190a1b2-c3d4)` or just the short id when the run has no name: the UUIDv7's
    whole millisecond, so that the id printed names this run (its first 8 characters are
    shared by every run of the same minute)."""
    short = short or str(run.get("id", ""))[:13]
    return f"{run['name']} ({short})" if run.get("name") else short


def print_run_status(run: dict[str, Any]) -> None:
    """`run demo (0190a1b2) stopped`, the status coloured."""
    out.print(Text(f"run {run_label(run)} ").append_text(status_text(str(run.get("status")))))


def stop_forced(run: dict[str, Any]) -> bool:
    """The run's stop waited no grace (`--force`, a second Ctrl-C: its `stop_grace` 0)."""
    return run.get("stop_grace") == 0


def run_result(run: dict[str, Any]) -> int:
    """Print how a finished run ended: its status, one line per node saying how it ended
    (cli/endings.py), each failure's stderr tail; its exit status (1 when it failed)."""
    from cli.endings import ENDING_STYLES, node_ending

    print_run_status(run)
    if run.get("error"):
        error(str(run["error"]))
    if run.get("degraded"):
        warning(f"degraded: {run['degraded']}")
    nodes = run.get("nodes") or []
    width = max((len(str(n.get("id"))) for n in nodes), default=0)
    forced = stop_forced(run)
    for node in nodes:
        line = Text(f"  {node.get('id')!s:<{width}}  ")
        ending = node_ending(node, forced)
        line.append(ending, style=ENDING_STYLES.get(str(node.get("status")), ""))
        out.print(line)
    for node in nodes:
        if node.get("status") == "failed" and node.get("exit_code") is not None:
            for tail_line in node.get("stderr_tail") or []:
                err.print(prefixed(str(node.get("id")), tail_line))
    return 1 if run.get("status") == "failed" else 0
