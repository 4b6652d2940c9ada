"""What a run's state store write could not take (a full disk): held in memory, shown as if
written, and written once the store takes writes again (SPEC 7.3).

A run stopped while `FLOW_HOME` is full would otherwise stay `running` in `state.db` for
good (nothing writes to an ended run again) and come back at the daemon's next start. Each
write of a run's fields, or of one node's, goes out with whatever is still held for it, in
one statement, so a field held from an earlier failed write never lands after a newer one.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from daemon.model.errors import StateWriteFailed
from daemon.store import Store

log = logging.getLogger(__name__)


@attrs.define
class Unsaved:
    """A run's fields, and its nodes', that the store has not taken yet."""

    run: dict[str, Any] = attrs.field(factory=dict)
    nodes: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    edits: list[dict[str, Any]] = attrs.field(factory=list)  # the journal's, in order

    def __bool__(self) -> bool:
        return bool(self.run or self.nodes or self.edits)

    def write_edit(self, store: Store, run_id: str, edit: dict[str, Any] | None) -> None:
        """A graph edit for the run's journal, after those still held, in their order."""
        if edit is not None:
            self.edits.append(edit)
        while self.edits:
            store.add_edit(run_id, self.edits[0])
            del self.edits[0]

    def write_run(self, store: Store, run_id: str, fields: dict[str, Any]) -> None:
        """`fields` and what is held for the run, written together; held on failure."""
        self.run.update(fields)
        store.update_run(run_id, **self.run)
        self.run.clear()

    def write_node(self, store: Store, run_id: str, node: str, fields: dict[str, Any]) -> None:
        held = self.nodes.setdefault(node, {})
        held.update(fields)
        store.update_node(run_id, node, **held)
        del self.nodes[node]

    def catch_up(self, store: Store, run_id: str) -> bool:
        """Write everything held; True once nothing is."""
        try:
            if self.run:
                self.write_run(store, run_id, {})
            for node in list(self.nodes):
                self.write_node(store, run_id, node, {})
            self.write_edit(store, run_id, None)
        except StateWriteFailed:
            return False
        log.info("run %s: the state store took what it could not before", run_id)
        return True

    def over(self, info: dict[str, Any]) -> dict[str, Any]:
        """The stored run `info` as it is: what is held, laid over it."""
        if not self:
            return info
        nodes = [{**node, **self.nodes.get(node["id"], {})} for node in info.get("nodes", [])]
        return {**info, **self.run, "nodes": nodes}
