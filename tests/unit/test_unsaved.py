"""Writes a full disk refused: held, laid over what is stored, written later in order."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.model.errors import StateWriteFailed
from daemon.run.unsaved import Unsaved


class FlakyStore:
    """A store whose writes fail while `full` (a full disk), else are kept."""

    def __init__(self) -> None:
        self.full = False
        self.runs: list[dict[str, Any]] = []
        self.nodes: list[tuple[str, dict[str, Any]]] = []
        self.edits: list[dict[str, Any]] = []

    def update_run(self, _run_id: str, **fields: Any) -> None:
        if self.full:
            raise StateWriteFailed("database or disk is full")
        self.runs.append(fields)

    def add_edit(self, _run_id: str, edit: dict[str, Any]) -> None:
        if self.full:
            raise StateWriteFailed("database or disk is full")
        self.edits.append(edit)

    def update_node(self, _run_id: str, node: str, **fields: Any) -> None:
        if self.full:
            raise StateWriteFailed("database or disk is full")
        self.nodes.append((node, fields))


def test_a_held_field_never_lands_after_a_newer_one() -> None:
    store, unsaved = FlakyStore(), Unsaved()
    store.full = True
    with pytest.raises(StateWriteFailed):
        unsaved.write_run(store, "r", {"status": "running", "degraded": "logs"})  # type: ignore[arg-type]
    store.full = False
    unsaved.write_run(store, "r", {"status": "stopped"})  # type: ignore[arg-type]
    assert store.runs == [{"status": "stopped", "degraded": "logs"}]  # one write, newest wins
    assert not unsaved
    assert unsaved.catch_up(store, "r")  # type: ignore[arg-type]
    assert len(store.runs) == 1  # nothing held: nothing written again


def test_held_writes_show_over_the_stored_run_and_are_written_on_catch_up() -> None:
    store, unsaved = FlakyStore(), Unsaved()
    store.full = True
    for write in (lambda: unsaved.write_run(store, "r", {"status": "stopped"}),  # type: ignore[arg-type]
                  lambda: unsaved.write_node(store, "r", "cam", {"status": "stopped"})):  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises(StateWriteFailed):
            write()
    stored = {"id": "r", "status": "running", "nodes": [{"id": "cam", "status": "running"}]}
    seen = unsaved.over(stored)
    assert (seen["status"], seen["nodes"][0]["status"]) == ("stopped", "stopped")
    assert not unsaved.catch_up(store, "r")  # type: ignore[arg-type]  # still full
    store.full = False
    assert unsaved.catch_up(store, "r")  # type: ignore[arg-type]
    assert store.runs == [{"status": "stopped"}]
    assert store.nodes == [("cam", {"status": "stopped"})]
    assert unsaved.over(stored) is stored


def test_a_held_edit_is_written_before_the_next_one() -> None:
    store, unsaved = FlakyStore(), Unsaved()
    store.full = True
    with pytest.raises(StateWriteFailed):
        unsaved.write_edit(store, "r", {"op": "add"})  # type: ignore[arg-type]
    store.full = False
    unsaved.write_edit(store, "r", {"op": "connect"})  # type: ignore[arg-type]
    assert store.edits == [{"op": "add"}, {"op": "connect"}]  # the journal's order
    assert not unsaved
