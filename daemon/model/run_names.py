"""What a run name may be, and the one rule that turns a RUN reference into a run.

A name is shown raw by `flow list`, `flow status` and every line that names a run, and is
typed back as RUN: it holds printable characters only (no control, format or separator
character other than the ASCII space: no newline, ANSI/OSC escape, RTL override or
zero-width character), is 1 to MAX_RUN_NAME_CHARS characters, does not begin or end with a
space, and does not read as the start of a run id: hex digits and dashes beginning with `0`,
as every id flow makes does (a UUIDv7 until the year 2527). A RUN that is an id or an id's
unique prefix means that run, whatever is named so (`pick_run`); such a name could not be
typed back, so it is refused (`bad`, `c5` or `deaf` are names: no id begins so).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

__all__ = [
    "MAX_RUN_NAME_CHARS", "looks_like_id", "pick_run", "refusal", "run_name_problem", "shown",
]  # fmt: skip

MAX_RUN_NAME_CHARS = 256  # requests.MAX_NAME_CHARS, the bound of a name on the wire
_ID_HEAD = re.compile(r"0[0-9a-fA-F-]*")  # new_run_id's UUIDv7s begin with 0 until 2527


def looks_like_id(text: str) -> bool:
    """Whether `text` could be a run id flow makes, or the start of one."""
    return _ID_HEAD.fullmatch(text) is not None


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot be a run name (one short clause), or None when it can."""
    if not name.strip():
        return "is empty" if not name else "is blank"
    if len(name) > MAX_RUN_NAME_CHARS:
        return f"is {len(name)} characters, more than {MAX_RUN_NAME_CHARS}"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return f"holds U+{ord(bad):04X}, which is not printable (control, format, line break)"
    if name != name.strip():
        return "begins or ends with a space"
    if looks_like_id(name):
        return "reads as the start of a run id (hex digits from 0): add a letter, as in run-0042"
    return None


def refusal(name: str | None) -> str | None:
    """`'NAME' PROBLEM` for a name that cannot be a run's, as every entry point words it
    after its own lead (`--name`, `run name`); None for no name or a good one."""
    problem = None if name is None else run_name_problem(name)
    return None if name is None or problem is None else f"{shown(name)} {problem}"


def shown(name: str) -> str:
    """`name` as an error line may quote it: escapes for what is not printable, cut short."""
    text = ascii(name[:60]) if any(not c.isprintable() for c in name) else repr(name[:60])
    return text + ("..." if len(name) > 60 else "")


def pick_run(
    ref: str, matches: Sequence[dict[str, Any]], active: Collection[str]
) -> dict[str, Any] | list[str]:
    """The run `ref` names among `matches` (the runs whose id is, or begins with, `ref`, or
    whose name is `ref`; newest first), or the ids it could mean when it names none or
    several (an empty list: none).

    An id wins: the exact id, then the one run whose id begins with `ref` (any case), so a
    name cannot take over an id's prefix (new names cannot look like one; runs named before
    names were checked may). Several ids beginning with `ref` are ambiguous, whatever is
    named so. Then a name: its active run, else its newest.
    """
    exact = [m for m in matches if m["id"] == ref]
    if exact:
        return exact[0]
    prefixed = [m for m in matches if str(m["id"]).lower().startswith(ref.lower())]
    if prefixed:
        return prefixed[0] if len(prefixed) == 1 else [str(m["id"]) for m in prefixed]
    named = [m for m in matches if m["name"] == ref]
    if named:
        return ([m for m in named if m["status"] in active] or named)[0]
    return []
