"""The wiring of a dataflow as a graph: edges, neighbours, and Mermaid/HTML drawings."""

from __future__ import annotations

import attrs

from daemon.descriptor import Dataflow, OutputRef, Timer

__all__ = ["Edge", "downstream", "edges", "to_html", "to_mermaid", "upstream"]


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
    return [edge for edge in edges(df) if edge.source == node_id]


def timers(df: Dataflow) -> list[str]:
    """Distinct timer specs in file order; each is drawn once, feeding all its receivers."""
    seen: dict[str, None] = {}
    for node in df.nodes:
        for i in node.inputs:
            if isinstance(i.source, Timer):
                seen.setdefault(i.source.spec, None)
    return list(seen)


def _mermaid_text(text: str) -> str:
    # Mermaid reads `"` and `#` inside labels; entity codes keep them literal.
    return text.replace("#", "#35;").replace('"', "#quot;")


def to_mermaid(df: Dataflow) -> str:
    """`flowchart LR` text; node keys are n0, n1 ... since ids may hold `.` or `-`."""
    key = {node.id: f"n{index}" for index, node in enumerate(df.nodes)}
    timer_key = {spec: f"t{index}" for index, spec in enumerate(timers(df))}
    lines = ["flowchart LR"]
    for node in df.nodes:
        label = _mermaid_text(node.id)
        lines.append(
            f'  {key[node.id]}[/"{label}"/]' if node.is_dynamic else f'  {key[node.id]}["{label}"]'
        )
    for spec, tkey in timer_key.items():
        lines.append(f'  {tkey}(["{_mermaid_text(spec)}"]):::timer')
    for node in df.nodes:
        for i in node.inputs:
            if isinstance(i.source, Timer):
                lines.append(
                    f'  {timer_key[i.source.spec]} -.->|"{_mermaid_text(i.id)}"| {key[node.id]}'
                )
            else:
                label = i.id if i.id == i.source.output else f"{i.source.output} → {i.id}"
                lines.append(f'  {key[i.source.node]} -->|"{_mermaid_text(label)}"| {key[node.id]}')
    lines.append("  classDef timer fill:#f6f6f6,stroke:#999,font-size:11px")
    dynamic = [key[n.id] for n in df.nodes if n.is_dynamic]
    if dynamic:
        lines.append("  classDef dynamic stroke-dasharray:5 5")
        lines.append(f"  class {','.join(dynamic)} dynamic")
    return "\n".join(lines) + "\n"


def to_html(df: Dataflow) -> str:
    """A self-contained page (inline SVG, no network) drawing the graph."""
    from daemon.graph_html import render  # graph_html builds on edges() and timers() above

    return render(df)
