"""A run's exit ledger: the keeper appends each node's own exit, a later recovery reads it.

A daemon that comes back after the keeper has gone learns from it which nodes had ended
by themselves, and never starts them again (the Cronicle lesson, docs/operations.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

EXIT_LEDGER: Final = "exits.jsonl"  # in a run's folder
MAX_LEDGER_BYTES: Final = 4 << 20  # one short line per node exit: far more than a run makes


def append_exit(ledger: Path, node: str, generation: int, code: int | None) -> None:
    """One line per node exit; a failure is logged (side work: a living daemon records the
    exit anyway)."""
    line = {"node": node, "generation": generation, "code": code}
    try:
        with ledger.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")
    except OSError as exc:
        log.warning("keeper: exit ledger %s: %s", ledger, exc)


def read_exits(path: Path) -> dict[tuple[str, int], int | None]:
    """(node, generation) -> exit code, from a keeper's ledger; unreadable lines skipped."""
    exits: dict[tuple[str, int], int | None] = {}
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            lines = file.readlines(MAX_LEDGER_BYTES)
    except OSError:
        return exits  # none written (no exit yet), or unreadable: nothing known
    for line in lines:
        try:
            entry = json.loads(line)
            node, generation, code = entry["node"], entry["generation"], entry["code"]
        except (ValueError, TypeError, KeyError):
            continue
        if (
            isinstance(node, str)
            and type(generation) is int
            and (code is None or type(code) is int)
        ):
            exits[(node, generation)] = code
    return exits
