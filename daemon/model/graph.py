"""The wiring of a dataflow as a graph: edges, neighbours and timers; pure queries."""

from __future__ import annotations

import attrs

from daemon.model.descriptor import Dataflow, OutputRef, Timer

__all__ = ["Edge", "downstream", "edges", "timers", "upstream"]


@attrs.frozen
class Edge:
    """One node-to-node mapping: `target.input` receives `source/output`."""

    source: str
    output: str
    target: str
    input: str


def edges(df: Dataflow) -> list[Edge]:
    """Every node-to-node mapping in file order (timers are not edges)."""
    return [
        Edge(source=i.source.node, output=i.source.output, target=node.id, input=i.id)
        for node in df.nodes
        for i in node.inputs
        if isinstance(i.source, OutputRef)
    ]


def upstream(df: Dataflow, node_id: str) -> dict[str, list[OutputRef]]:
    """Input id -> its sources; a list so fan-in can come later without a new API."""
    node = df.node(node_id)
    return {i.id: [i.source] if isinstance(i.source, OutputRef) else [] for i in node.inputs}


def downstream(df: Dataflow, node_id: str) -> list[Edge]:
    """Edges whose source is `node_id`."""
    df.node(node_id)  # KeyError for an unknown node, like upstream()
    # no Edge made for the others: asked at each node's end, this would be quadratic
    return [
        Edge(source=node_id, output=i.source.output, target=node.id, input=i.id)
        for node in df.nodes
        for i in node.inputs
        if isinstance(i.source, OutputRef) and i.source.node == node_id
    ]


def timers(df: Dataflow) -> list[str]:
    """Distinct timer specs in file order; each is drawn once, feeding all its receivers."""
    seen: dict[str, None] = {}
    for node in df.nodes:
        for i in node.inputs:
            if isinstance(i.source, Timer):
                seen.setdefault(i.source.spec, None)
    return list(seen)
