"""A recorded message's metadata as standard JSON: NaN and infinities as strings, and back.

Python's `json` writes a NaN as the bare token `NaN`, which no other JSON reader takes:
Foxglove and `mcap cat --json` would fail on such a record. So a non-finite float in the
metadata (a value, or an item of a list value) is written as the string proto3's JSON
mapping uses (`"NaN"`, `"Infinity"`, `"-Infinity"`) and named in the record's `nonfinite`
list (`[key]` or `[key, index]`), which a replay reads to give the float back; a string
`"NaN"` the sender sent stays a string. Recordings made before this kept the bare tokens,
which `json.loads` still reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

_SPELLING: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_NONFINITE: Final = 1 << 16  # a hostile file's list is refused past this many entries


def spelled(value: float) -> str:
    """A NaN or an infinity as JSON mappings write it (also `flow topic echo --json`)."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _nonfinite(value: object) -> bool:
    return type(value) is float and not math.isfinite(value)


def written(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], list[list[Any]]]:
    """`metadata` with its non-finite floats spelled as strings, and where they were."""
    out: dict[str, Any] = {}
    where: list[list[Any]] = []
    for key, value in metadata.items():
        if _nonfinite(value):
            out[key] = spelled(value)
            where.append([key])
        elif type(value) is list and any(_nonfinite(item) for item in value):
            items = list(value)
            for index, item in enumerate(items):
                if _nonfinite(item):
                    items[index] = spelled(item)
                    where.append([key, index])
            out[key] = items
        else:
            out[key] = value
    return out, where


def read(metadata: dict[str, Any], where: object) -> dict[str, Any]:
    """The floats `written` spelled, back in `metadata` (in place); ValueError for a
    `nonfinite` list that does not point at such a spelling (not a record flow wrote)."""
    if not isinstance(where, list) or len(where) > MAX_NONFINITE:
        raise ValueError("a recorded message whose `nonfinite` is not a list of places")
    for place in where:
        if not isinstance(place, list) or not place or len(place) > 2:
            raise ValueError(f"a recorded message with a `nonfinite` place {place!r:.60}")
        key = place[0]
        holder: Any = metadata
        if len(place) == 2:
            holder, key = metadata.get(key) if isinstance(key, str) else None, place[1]
            if type(holder) is not list or type(key) is not int or not 0 <= key < len(holder):
                raise ValueError(f"a recorded message with a `nonfinite` place {place!r:.60}")
        elif not isinstance(key, str) or key not in metadata:
            raise ValueError(f"a recorded message with a `nonfinite` place {place!r:.60}")
        text = holder[key]
        if not isinstance(text, str) or text not in _SPELLING:
            raise ValueError(f"a recorded message whose `nonfinite` {place!r:.60} is not one")
        holder[key] = _SPELLING[text]
    return metadata
