"""Node text shown on a terminal: colours kept, every other control sequence removed
whole, other control characters shown as escapes (cli/terminal_text.py)."""

from __future__ import annotations

import pytest

from cli.terminal_text import displayable

CASES = [
    ("plain text, ünïcode 漢字", "plain text, ünïcode 漢字"),
    *[(sgr, sgr) for sgr in ("\x1b[31mred\x1b[0m", "\x1b[1;38;5;208mbold\x1b[m")],  # colours
    ("A \x1b]0;title\x07 B", "A  B"),  # OSC ended by BEL: rich dropped the text after it
    ("A \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ B", "A link B"),  # OSC ended by ST
    ("A \x1bP+q\x1b\\ B \x1b_apc\x9c C", "A  B  C"),  # DCS, APC ended by C1 ST
    ("A \x1b[2J\x1b[H B \x1b[?25l C", "A  B  C"),  # CSI that is not SGR
    ("A \x9b2J B \u009b31m", "A \\x9b2J B \\x9b31m"),  # C1 CSI: shown, not acted on
    ("over\rwrite\x08\x00\x7f end", "over\\rwrite\\b\\x00\\x7f end"),
    ("tab\tkept", "tab\tkept"),
    ("lone \x1b", "lone "),
    ("A \x1b]0;never ended", "A "),
    ("A \x1b7 saved \x1b8 B", "A  saved  B"),  # two-character escapes
]


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_only_colours_reach_the_terminal(text: str, shown: str) -> None:
    assert displayable(text) == shown
    assert displayable(shown) == shown  # nothing left to act on: the same again
