"""A running graph's edits as changes of its model, made live and made again after a crash.

`flow node add|remove|connect|disconnect` (daemon/control/edits.py) change the run's
dataflow model here, then tell its nodes. Each edit is also written to the run's journal in
the state store (`runs.edits`), so recovery makes the same changes, in the same order, to
the model it parses from the run's saved dataflow: the same slots, inputs and endpoints the
nodes it adopts were wired with, and the same configs for the ones it starts again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from daemon.model.descriptor import Dataflow, Input, NodeSpec, OutputRef
from daemon.model.errors import FlowError, StateWriteFailed
from daemon.model.node_snippet import parse_added_node
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run

log = logging.getLogger(__name__)


def present(run: Run) -> Dataflow:
    """The run's model without the nodes removed from it: what an added node joins (an id
    removed before may be added again)."""
    nodes = tuple(n for n in run.dataflow.nodes if n.id not in run.removed)
    return attrs.evolve(run.dataflow, nodes=nodes)


def add_node(run: Run, spec: NodeSpec, endpoints: Mapping[str, str] | None = None) -> NodeSlot:
    """One more node in the model, its inputs given endpoints; its slot, not started. A
    node of an id removed before takes its place, and goes on from its generation (its
    exits are in the keeper's ledger by generation, its messages numbered by it)."""
    before = run.slots.get(spec.id) if spec.id in run.removed else None
    run.removed.discard(spec.id)
    kept = tuple(n for n in run.dataflow.nodes if n.id != spec.id)
    run.dataflow = attrs.evolve(run.dataflow, nodes=(*kept, spec))
    for item in spec.inputs:
        if isinstance(item.source, OutputRef):
            run.new_input_endpoint(spec.id, item.id, (endpoints or {}).get(item.id))
    slot = NodeSlot(spec=spec, run=run)
    slot.generation = before.generation if before is not None else 0
    return slot


def connect(
    run: Run, source: OutputRef, node: str, input_id: str, endpoint: str | None = None
) -> tuple[Input, str]:
    """`source` feeds `node/input_id` (a second source of an input joins its endpoint and
    queue: fan-in); the input as it is now, and its endpoint (`endpoint`: the one it had
    before a crash)."""
    receiver = run.slots[node]
    same = [item for item in receiver.spec.inputs if item.id == input_id]
    item = attrs.evolve(same[0], source=source) if same else Input(id=input_id, source=source)
    replace_node(run, node, inputs=(*receiver.spec.inputs, item))
    if same:
        return item, run.input_endpoint(node, input_id)
    return item, run.new_input_endpoint(node, input_id, endpoint)


def disconnect(run: Run, source: OutputRef, node: str, input_id: str) -> list[Input]:
    """`source` no longer feeds `node/input_id`; the inputs taken out (none: not connected)."""
    receiver = run.slots[node]
    matching = [
        item for item in receiver.spec.inputs
        if item.id == input_id and item.source == source
    ]  # fmt: skip
    if matching:
        kept = tuple(item for item in receiver.spec.inputs if item not in matching)
        replace_node(run, node, inputs=kept)
    return matching


def replace_node(run: Run, node: str, **changes: Any) -> None:
    spec = attrs.evolve(run.slots[node].spec, **changes)
    run.slots[node].spec = spec
    nodes = tuple(spec if n.id == node else n for n in run.dataflow.nodes)
    run.dataflow = attrs.evolve(run.dataflow, nodes=nodes)


def journal(run: Run, edit: dict[str, Any]) -> None:
    """Keep an edit made live, for a recovery of the run (auxiliary: SPEC 7.3): one the
    store refuses (a full disk) is held, and written before the next, in order. It names
    the endpoints it made, which recovery gives the same inputs again."""
    run.edits.append(edit)
    try:
        run.unsaved.write_edit(run.store, run.id, edit)
    except StateWriteFailed as exc:
        run.mark_degraded(f"state store: {exc}")


def replay(run: Run, edits: Sequence[Mapping[str, Any]], machines: frozenset[str]) -> None:
    """Make a recovered run's journaled edits again, in order, to its model. An edit that
    no longer applies (a node it names is not there) is left out, and said; the endpoints
    it made are never given to another input."""
    for edit in edits:
        try:
            _replay_one(run, edit, machines)
        except (FlowError, KeyError, ValueError, TypeError) as exc:
            for endpoint in _endpoints(edit).values():  # never given to another input
                run.reserve_endpoint(endpoint)
            log.warning("run %s: graph edit %s not made again: %s", run.id, dict(edit), exc)
            run.mark_degraded(f"recovery: a graph edit ({edit.get('op')}) not made again: {exc}")
            continue
        run.edits.append(dict(edit))


def _replay_one(run: Run, edit: Mapping[str, Any], machines: frozenset[str]) -> None:
    op = edit["op"]
    if op == "add":
        # its files are not looked for: it was checked when added, and an adopted process
        # of it runs whatever became of them (a restart that cannot spawn it says so)
        spec = parse_added_node(present(run), Path(edit["path"]), edit["text"],
                                machines=machines, check_paths=False)  # fmt: skip
        slot = add_node(run, spec, _endpoints(edit))
        run.slots[slot.id] = slot
    elif op == "remove":
        run.removed.add(run.slots[edit["node"]].id)
    elif op in ("connect", "disconnect"):
        node, _, output = str(edit["source"]).partition("/")
        target, _, input_id = str(edit["target"]).partition("/")
        source = OutputRef(node=node, output=output)
        if op == "connect":
            connect(run, source, target, input_id, _endpoints(edit).get(input_id))
        else:
            disconnect(run, source, target, input_id)
    else:
        raise ValueError(f"unknown edit {op!r}")


def _endpoints(edit: Mapping[str, Any]) -> dict[str, str]:
    """input id -> the endpoint an edit made for it (none for an older journal's)."""
    made = edit.get("endpoints")
    if not isinstance(made, dict):
        return {}
    return {str(k): v for k, v in made.items() if isinstance(v, str) and v.startswith("ipc://")}
