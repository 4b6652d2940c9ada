"""Node log lines in bulk: what `render.log_line` prints, built as one string per batch.

Rich renders a line in about 75 us (about 7.5 s of CPU for 100,000 lines), which held
`flow run`'s keeper thread back from its nodes' pipes, and `flow logs` as long. A line
with no control character (nearly all) is built here as plain text wrapped in the
console's own colour codes, which rich itself renders once per style; any other line (a
node's ANSI colours, a tab, a lone CR) is still printed by rich, in its place. The output
is the same either way. `flow logs --json` lines go the same way, with no styles.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from cli import render
from daemon.model.logformat import LineParts, LogRecord, line_parts

Item = tuple[str, LogRecord]  # (node id, record)
# a line to show: (node id, its record, one of its lines or the record's JSON line)
Shown = tuple[str, LogRecord, LineParts | str]


class BulkLines:
    """Writes batches of node records to `console` (its file, written and flushed once a batch)."""

    def __init__(self, console: Console, width: int = 0) -> None:
        self.console = console
        self.width = width
        self._styles: dict[str, tuple[str, str]] = {"": ("", "")}
        self._nodes: dict[str, tuple[str, str]] = {}  # each node's colour's codes

    def write(self, items: Sequence[Item]) -> None:
        """Print `items` in order; BrokenPipeError once the reader has left."""
        width = self.width
        self.write_shown([(node, record, part) for node, record in items
                          for part in line_parts(record, node, width)])  # fmt: skip

    def write_shown(self, lines: Sequence[Shown]) -> None:
        """Print `lines` (each a record's line, or its JSON line) in order."""
        chunk: list[str] = []
        for node, record, part in lines:
            if type(part) is str:  # a JSON line: no styles
                if part.isprintable():
                    chunk += (part, "\n")
                else:
                    self._flush(chunk)
                    self.console.print(Text(part))
                continue
            assert isinstance(part, LineParts)
            if not (part.prefix + part.head + part.text).isprintable():
                self._flush(chunk)
                self.console.print(render.log_line(node, record, part))
                continue
            node_style = self._nodes.get(node) or self._node_style(node)
            head_style = self._style(render.LEVEL_STYLES.get(str(record.level), ""))
            chunk += (node_style[0], part.prefix, node_style[1])
            chunk += (head_style[0], part.head, head_style[1], part.text, "\n")
        self._flush(chunk)

    def _flush(self, chunk: list[str]) -> None:
        if not chunk:
            return
        data = "".join(chunk)
        chunk.clear()
        file = self.console.file
        try:
            file.write(data)
            file.flush()
        except BrokenPipeError:
            self.console.on_broken_pipe()  # render's: stdout to /dev/null, then re-raised
            raise

    def _node_style(self, node: str) -> tuple[str, str]:
        codes = self._nodes[node] = self._style(render.node_colour(node))
        return codes

    def _style(self, style: str) -> tuple[str, str]:
        """The codes rich opens and closes `style` with on this console (none when piped)."""
        codes = self._styles.get(style)
        if codes is None:
            with self.console.capture() as captured:
                self.console.print(Text("X", style=style), end="")
            before, _, after = captured.get().partition("X")
            codes = self._styles[style] = (before, after)
        return codes
