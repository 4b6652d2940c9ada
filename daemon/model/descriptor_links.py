"""The cross-node checks of a dataflow file: every input names a declared output, and where
both ends declare a type (dora's `output_types` / `input_types`), the types fit."""

from __future__ import annotations

from daemon.model import descriptor_dora as dora
from daemon.model import descriptor_fields as f
from daemon.model.descriptor_model import NodeSpec, OutputRef
from daemon.model.errors import did_you_mean
from daemon.model.yaml_lines import Path as Where


def check_links(report: f.Report, nodes: list[tuple[Where, NodeSpec]]) -> None:
    by_id = {node.id: node for _, node in reversed(nodes) if node.id}  # the first one wins
    for where, node in nodes:
        if node.raw.keys() & dora.NODE_SOURCES:
            continue  # an operator/ros2/... node, already refused: its wiring is dora's
        for item in node.inputs:
            if not isinstance(item.source, OutputRef):
                continue
            ref, at = item.source, (*where, "inputs", item.id)
            upstream = by_id.get(ref.node)
            if upstream is None:
                report.add(at, f"unknown node '{ref.node}'" + did_you_mean(ref.node, by_id))
            elif upstream.raw.keys() & dora.NODE_SOURCES:
                continue  # an operator/ros2/... node, already refused: its outputs are unknown
            elif upstream is node and ref.output in node.outputs:
                report.add(at, f"input mapped to the node's own output '{ref}'")
            elif ref.output not in upstream.outputs:
                outs = ", ".join(upstream.outputs) or "none declared"
                report.add(at, f"node '{ref.node}' has no output '{ref.output}' (outputs: {outs})")
            else:
                _check_types(report, at, node, item.id, upstream, ref.output)


def _check_types(report: f.Report, at: Where, node: NodeSpec, input_id: str,
                 upstream: NodeSpec, output: str) -> None:  # fmt: skip
    wanted = node.input_types.get(input_id)
    sent = upstream.output_types.get(output)
    if wanted is None or sent is None or dora.types_fit(sent, wanted):
        return
    report.add(at, f"type mismatch: {upstream.id}/{output} sends {sent} (output_types) but "
                   f"{node.id}/{input_id} takes {wanted} (input_types)")  # fmt: skip


