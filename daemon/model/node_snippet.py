"""`flow node add`'s YAML: one node read by the project's loader, checked against a graph.

The snippet goes through `yaml_lines.load` like every dataflow file (YAML 1.2 scalars:
`MODE: on` stays the string `on`, `1.10` stays `1.10`), and is validated as the last node
of the running graph, so a problem is one `FILE:LINE: where: cause` line of the snippet.
"""

from __future__ import annotations

from pathlib import Path

from daemon.model.descriptor import MAX_YAML_BYTES, Dataflow, NodeSpec, load_text, parse_loaded
from daemon.model.descriptor_logs import is_logs_source
from daemon.model.errors import DataflowInvalid
from daemon.model.yaml_lines import Loaded
from daemon.model.yaml_lines import Path as Where

MAX_SNIPPET_BYTES = 64 * 1024
assert MAX_SNIPPET_BYTES <= MAX_YAML_BYTES


def parse_added_node(
    dataflow: Dataflow,
    file: Path,
    text: str,
    *,
    machines: frozenset[str] | None = None,
    check_paths: bool = True,
) -> NodeSpec:
    """The node `text` (a node mapping, or a file whose `nodes` list has one) declares,
    valid as one more node of `dataflow`; raises DataflowInvalid with the snippet's lines.
    `check_paths=False`: its executable is not looked for (a recovery making it again)."""
    name = str(file)
    loaded = load_text(name, text, MAX_SNIPPET_BYTES)
    value = loaded.value
    prefix: Where = ()
    nodes = value.get("nodes") if isinstance(value, dict) else None
    if isinstance(nodes, list) and len(nodes) == 1:
        value, prefix = nodes[0], ("nodes", 0)
    if not isinstance(value, dict):
        raise DataflowInvalid([f"{name}:1: expected one node (a mapping with id, path, ...)"])
    node = dict(value)
    if isinstance(node.get("id"), str) and any(n.id == node["id"] for n in dataflow.nodes):
        line = loaded.lines.get((*prefix, "id"), 1)
        said = f"node '{node['id']}' is already in the run"
        raise DataflowInvalid([f"{name}:{line}: id: {said} (flow node remove it first, or "
                               "give this one another id)"])  # fmt: skip
    inputs = node.get("inputs")
    for input_id, spec in (inputs.items() if isinstance(inputs, dict) else ()):
        source = spec.get("source") if isinstance(spec, dict) else spec
        if isinstance(source, str) and is_logs_source(source):
            line = loaded.lines.get((*prefix, "inputs", input_id), 1)
            raise DataflowInvalid([f"{name}:{line}: inputs.{input_id}: a {source} input "
                                   "cannot be added to a running dataflow (its nodes "
                                   "already send their logs as they were started)"])  # fmt: skip
    path = node.get("path")
    if isinstance(path, str) and path != "dynamic" and ("/" in path or path.endswith(".py")):
        # relative to the snippet's folder, not to the running dataflow's
        node["path"] = str((file.parent / path).resolve())
    index = len(dataflow.nodes)

    def moved(where: Where) -> Where | None:
        if where[: len(prefix)] != prefix:
            return None
        return ("nodes", index, *where[len(prefix) :])

    combined = Loaded(
        value={"nodes": [dict(n.raw) for n in dataflow.nodes] + [node]},
        lines={m: line for w, line in loaded.lines.items() if (m := moved(w)) is not None},
        texts={m: txt for w, txt in loaded.texts.items() if (m := moved(w)) is not None},
        problems=[(m, line, msg) for w, line, msg in loaded.problems if (m := moved(w))],
    )
    try:
        return parse_loaded(name, dataflow.path, combined, machines=machines,
                            check_paths=check_paths).nodes[-1]
    except DataflowInvalid as exc:
        raise DataflowInvalid(_as_snippet(exc.problems, index, prefix)) from None


def _as_snippet(problems: list[str], index: int, prefix: Where) -> list[str]:
    """Problems of the new node, named as in the snippet (`env.MODE`, or `nodes[0].env`)."""
    ours = [p for p in problems if f": nodes[{index}]" in p] or problems
    written = "nodes[0]" if prefix else ""
    result = []
    for problem in ours:
        problem = problem.replace(f": nodes[{index}].", f": {written}." if written else ": ", 1)
        result.append(
            problem.replace(f": nodes[{index}]: ", f": {written}: " if written else ": ", 1)
        )
    return result
