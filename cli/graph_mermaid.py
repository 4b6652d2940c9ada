"""A dataflow drawn as Mermaid `flowchart` text (`flow graph --mermaid`)."""

from __future__ import annotations

from daemon.model.descriptor import Dataflow, Timer
from daemon.model.graph import timers


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
