"""`flow run`'s node lines built in bulk print exactly what rich prints for them, on a
terminal (in each colour system) and piped."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from cli import render
from cli.bulk_lines import BulkLines
from daemon.model.logformat import LogRecord, line_parts

T = 1_700_000_000.25
RECORDS = [
    ("camera", LogRecord(T, "stdout", "line 1")),
    ("camera", LogRecord(T, "stdout", "")),
    ("camera", LogRecord(T, "stdout", "  spaced  ")),
    ("camera", LogRecord(T, "stdout", "[bold]not markup[/] ünïcode 漢字 🎉")),
    ("plan", LogRecord(T, "stderr", "oops")),
    ("plan", LogRecord(T, "log", "done\nsecond line", level="WARNING", logger="plan.x")),
    ("plan", LogRecord(T, "log", "bad", level="ERROR", logger=None)),
    ("plan", LogRecord(T, "log", "odd level", level="NOTICE", logger="l")),
    ("plan", LogRecord(T, "log", "quiet", level="DEBUG", logger="l")),
    # rich's own path: a node's colours, a tab, a CR, a bell
    ("camera", LogRecord(T, "stdout", "\x1b[31mred\x1b[0m plain")),
    ("camera", LogRecord(T, "stdout", "a\tb")),
    ("camera", LogRecord(T, "stdout", "over\rwrite")),
    ("camera", LogRecord(T, "stdout", "bell\x07")),
    ("camera", LogRecord(T, "stdout", "after")),
    ("camera", LogRecord(T, "stdout", "A \x1b]0;t\x07 B \x9b2J C \x1bP+q\x1b\\ D")),
    # a record of several lines, one of them for rich: each line still prints the same
    ("plan", LogRecord(T, "log", "first\nsec\tond\nthird", level="INFO", logger="l")),
]


@pytest.mark.parametrize("colours", [None, "standard", "256", "truecolor"])
def test_bulk_lines_print_what_rich_prints(colours: str | None) -> None:
    def console(file: io.StringIO) -> Console:
        return Console(file=file, force_terminal=colours is not None, color_system=colours,
                       highlight=False, soft_wrap=True, width=20)  # fmt: skip

    by_rich, in_bulk = io.StringIO(), io.StringIO()
    rich_console = console(by_rich)
    for node, record in RECORDS:
        # a record whole, as flow printed it through rich before it printed in bulk
        lines = [render.log_line(node, record, p) for p in line_parts(record, node, 6)]
        rich_console.print(Text("\n").join(lines))
    bulk = BulkLines(console(in_bulk), 6)
    bulk.write(RECORDS[:5])
    bulk.write(RECORDS[5:])
    assert in_bulk.getvalue() == by_rich.getvalue()
    assert ("\x1b[" in in_bulk.getvalue()) == (colours is not None)
