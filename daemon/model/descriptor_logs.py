"""dora's `dora/logs[/LEVEL[/NODE]]` input, wired as plain edges when the file is read.

Each node whose logs an input asks for sends its log records the way `send_logs_as` does
(the keeper reads them from the node's stderr and sends JSON entries), on the output it
already gives `send_logs_as`, or else on a `dora.logs` output added for it; the input
then has one source per such node (fan-in). LEVEL (`error`, `warn`, `info`, `debug`,
`trace`) keeps records at or above it; a node that several such inputs read sends at the
lowest level any of them asks for. A node whose stdout already goes out (`send_stdout_as`)
cannot also send its records, and dynamic nodes (not started by flow) have none to send.
"""

from __future__ import annotations

import attrs

from daemon.model import descriptor_fields as f
from daemon.model.descriptor_model import Input, NodeSpec, OutputRef
from daemon.model.yaml_lines import Path as Where

SOURCE_NODE = "dora"  # `dora/logs...` reads as OutputRef("dora", "logs...") until wired
LOGS_OUTPUT = "dora.logs"
# `stdout`, dora's lowest, is every record (flow never sends plain stdout lines here)
LEVELS = {"stdout": 0, "trace": 10, "debug": 10, "info": 20, "warn": 30, "warning": 30,
          "error": 40}  # fmt: skip


def is_logs_source(source: str) -> bool:
    return source == "dora/logs" or source.startswith("dora/logs/")


def check_logs_source(source: str) -> str | None:
    """The problem with a `dora/logs...` source, or None when it reads."""
    parts = source.split("/")[2:]
    if len(parts) > 2 or (parts and parts[0].lower() not in LEVELS):
        return (f"expected dora/logs, dora/logs/LEVEL or dora/logs/LEVEL/NODE (LEVEL: "
                f"{', '.join(k for k in LEVELS if k != 'warning')}), got '{source}'")  # fmt: skip
    return None


def wire_log_inputs(report: f.Report, nodes: list[tuple[Where, NodeSpec]]) -> None:
    """Replace every `dora/logs` input of `nodes` (in place) by edges from the nodes it
    reads, and make those nodes send their records."""
    levels: dict[str, int] = {}  # sender id -> the lowest level asked of it
    wanted: dict[str, list[tuple[Input, list[str]]]] = {}  # receiver -> its inputs' senders
    by_id = {node.id: node for _, node in nodes}
    for where, node in nodes:
        for item in node.inputs:
            if not (isinstance(item.source, OutputRef) and item.source.node == SOURCE_NODE
                    and is_logs_source(str(item.source))):  # fmt: skip
                continue
            parts = item.source.output.split("/")[1:]
            level = LEVELS[parts[0].lower()] if parts else 0
            at = (*where, "inputs", item.id)
            if len(parts) == 2:
                if parts[1] not in by_id:
                    report.add(at, f"unknown node '{parts[1]}' in {item.source}")
                senders = [parts[1]] if parts[1] in by_id else []
            else:
                senders = [n.id for _, n in nodes if n.id != node.id and not n.is_dynamic]
            for sender in senders:
                other = by_id[sender]
                if other.send_stdout_as is not None and not other.sends_logs:
                    report.add(at, f"node '{sender}' sends its stdout (send_stdout_as), so "
                                   "its log records cannot also go to dora/logs")  # fmt: skip
                levels[sender] = min(levels.get(sender, level), level)
            if not senders:
                report.add(at, f"{item.source}: no node to read logs from")
            wanted.setdefault(node.id, []).append((item, senders))
    for index, (where, node) in enumerate(nodes):
        if node.id in levels and node.send_stdout_as is None:
            # (a node with its own send_logs_as keeps sending it every record)
            node = attrs.evolve(node, outputs=(*node.outputs, LOGS_OUTPUT),
                                send_stdout_as=LOGS_OUTPUT, sends_logs=True,
                                logs_level=levels[node.id])  # fmt: skip
            nodes[index] = (where, node)
    by_id = {node.id: node for _, node in nodes}
    for index, (where, node) in enumerate(nodes):
        if node.id not in wanted:
            continue
        inputs: list[Input] = []
        for item in node.inputs:
            match = [senders for asked, senders in wanted[node.id] if asked is item]
            if not match:
                inputs.append(item)
                continue
            for sender in match[0]:
                output = by_id[sender].send_stdout_as or LOGS_OUTPUT
                inputs.append(attrs.evolve(item, source=OutputRef(sender, output)))
        nodes[index] = (where, attrs.evolve(node, inputs=tuple(inputs)))
