"""A failed node's stderr tail, bounded: its last lines, each cut to LINE_BYTES, all within
TAIL_BYTES, wherever a tail is made, kept, stored or read back.

The tail says why a node failed (`flow list` shows its last line, a run's result all of
it); the whole output is in the node's log. A node's lines were kept whole up to 64 KiB
each: 40 failing nodes writing long lines made a 56 MB `list` reply, which the daemon
dropped (over its 4 MiB per client), and a 48 MB state store. A line of a traceback or
an error message fits in LINE_BYTES; TAIL_BYTES holds a 20-line traceback (1-3 KiB), and
keeps a run of 40 failed nodes' tails in 160 KiB. Sizes are of the text in UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

TAIL_LINES: Final = 20  # the last lines of its stderr a node keeps
LINE_BYTES: Final = 1024  # one line of it, the cut marker included
TAIL_BYTES: Final = 4096  # all its lines together; the newest are kept
_MARKER_ROOM: Final = 40  # " [… 9999999999 bytes cut]" and more


def _size(text: str) -> int:
    return len(text.encode("utf-8", errors="replace"))


def cut_line(line: str) -> str:
    """`line`, or its first bytes and ` [… N bytes cut]` when it is over LINE_BYTES."""
    data = line.encode("utf-8", errors="replace")
    if len(data) <= LINE_BYTES:
        return line
    head = data[: LINE_BYTES - _MARKER_ROOM].decode("utf-8", errors="ignore")  # whole chars
    return f"{head} [… {len(data) - _size(head)} bytes cut]"


def bound_tail(lines: Iterable[object]) -> list[str]:
    """The newest of `lines` (the last TAIL_LINES, each cut) that fit in TAIL_BYTES together;
    the newest line always, as it says how the node ended."""
    kept: list[str] = []
    room = TAIL_BYTES
    for line in reversed([cut_line(str(line)) for line in list(lines)[-TAIL_LINES:]]):
        size = _size(line) + 1  # its newline, as a result prints it
        if kept and size > room:
            break
        kept.append(line)
        room -= size
    kept.reverse()
    return kept
