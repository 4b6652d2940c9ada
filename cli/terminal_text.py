"""A node's text made safe to show: its colours kept, every other control sequence out.

Node output reaches the user's terminal (`flow run`, `flow logs`, an attached `flow
start`). rich turns SGR sequences (colours) into styles, but passes other control codes
through (a C1 CSI, `\\x9b`, moves the cursor or clears the screen, a CR hides what came
before it on the line) and reads an OSC ended by BEL on to the next `ESC \\`, dropping the
text in between. Here every escape sequence but SGR is removed whole (OSC, DCS, SOS, PM
and APC up to their terminator; CSI up to its final byte) and any other control character
(C0 but tab, DEL, C1) is shown as its escape (`\\r`, `\\x9b`): what a node printed is all
there, and none of it drives the terminal.
"""

from __future__ import annotations

import re
from typing import Final

_TOKEN: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: parameters, intermediates, a final byte
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -~]?"  # any other escape, or a lone ESC
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]"  # a control character (tab is text)
)
_SGR: Final = re.compile(r"\x1b\[[0-9;:]*m")
_NAMED: Final = {"\r": "\\r", "\n": "\\n", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\a": "\\a"}


def displayable(text: str) -> str:
    """`text` with its SGR sequences and nothing else that a terminal would act on."""
    return _TOKEN.sub(_token, text)


def _token(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] == "\x1b":
        return token if _SGR.fullmatch(token) else ""
    return _NAMED.get(token) or f"\\x{ord(token):02x}"
