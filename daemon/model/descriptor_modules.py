"""dora's `module:` sub-graphs, expanded into plain nodes before a dataflow is validated.

A node `{id: M, module: FILE, inputs: {...}, env: {...}}` is replaced by the nodes of FILE
(a mapping with a `module:` header naming its `inputs`, `inputs_optional` and `outputs`,
and a `nodes` list). Inner ids become `M.<id>`; inside, `_mod/X` is the module's input X
(an optional one not given drops that inner input); outside, `M/OUT` reads the one inner
node that produces OUT. Inner relative paths are the module file's; the module node's
`env` is given to every inner node (over the inner values). Modules may nest, to a depth.
A problem is one `FILE:LINE` line of the module file or of the module node.

The expansion itself is bounded, not only its result: nesting multiplies (20 module nodes
a level, 8 levels, is 20^8 nodes from nine small files), so the nodes made and the module
files read (each read counted, the same file again too) are counted as they come, and the
first count past its bound stops the whole check with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.model import descriptor_dora as dora
from daemon.model import descriptor_fields as f
from daemon.model.descriptor_model import MAX_NODES
from daemon.model.errors import DataflowInvalid
from daemon.model.yaml_lines import Loaded, YamlSyntaxError, load
from daemon.model.yaml_lines import Path as Where

MODULE_INPUT = "_mod"
MAX_DEPTH = 8
MAX_MODULE_BYTES = 1 << 20
# Over one whole expansion: module files read (a file read again counts again) and their bytes
# summed, so a dataflow's modules cost at most about what checking a large top file does.
MAX_MODULE_LOADS = 256
MAX_MODULE_TOTAL_BYTES = 2 * MAX_MODULE_BYTES
HEADER_KEYS = frozenset({"name", "inputs", "inputs_optional", "outputs"})
MODULE_NODE_KEYS = frozenset({"id", "name", "description", "module", "inputs", "env"})
MODULE_REFUSED = {
    **dora.NODE,
    "params": "module params are not supported: give inner nodes `env` on the module node",
}


class _TooBig(Exception):
    """The expansion crossed one of its bounds; the message says which and where."""


class _Budget:
    """What one expansion has made and read so far, checked as it grows."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes  # the dataflow's plain nodes, then each inner one as it is made
        self.loads = 0
        self.bytes = 0

    def add_node(self, place: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(f"the modules expand to more than the {MAX_NODES} nodes a dataflow "
                          f"may hold (crossed at {place})")  # fmt: skip

    def add_load(self, place: str) -> None:
        self.loads += 1
        if self.loads > MAX_MODULE_LOADS:
            raise _TooBig(f"the modules read more than {MAX_MODULE_LOADS} module files, each "
                          f"read counted (crossed at {place})")  # fmt: skip

    def add_bytes(self, count: int, place: str) -> None:
        self.bytes += count
        if self.bytes > MAX_MODULE_TOTAL_BYTES:
            raise _TooBig(f"the module files read add up to more than {MAX_MODULE_TOTAL_BYTES} "
                          f"bytes, each read counted (crossed at {place})")  # fmt: skip


def expand_modules(report: f.Report, loaded: Loaded, folder: Path) -> Loaded:
    """`loaded` with every module node replaced by its inner nodes; lines of the other
    nodes follow them, inner nodes point at their module node's line. DataflowInvalid
    (the problems so far and the bound's line) when the expansion grows past a bound."""
    top = loaded.value
    nodes = top.get("nodes") if isinstance(top, dict) else None
    if not isinstance(nodes, list) or not any(_is_module(n) for n in nodes):
        return loaded
    plain = sum(1 for n in nodes if not _is_module(n))
    if plain > MAX_NODES:
        return loaded  # the node count check says so, without expanding anything
    budget = _Budget(plain)
    out: list[Any] = []
    lines: dict[Where, int] = {k: v for k, v in loaded.lines.items() if k[:1] != ("nodes",)}
    texts: dict[Where, str] = {k: v for k, v in loaded.texts.items() if k[:1] != ("nodes",)}
    renames: dict[str, dict[str, str]] = {}  # module id -> its output -> inner node id
    for index, node in enumerate(nodes):
        if not _is_module(node):
            _move(loaded, ("nodes", index), ("nodes", len(out)), lines, texts)
            out.append(node)
            continue
        line = report.line_of(("nodes", index))
        place = _place(report.file, line, index, node)
        try:
            inner, outputs = _expand(
                report, budget, place, node, ("nodes", index), folder, 0, frozenset()
            )
        except _TooBig as exc:
            report.add(("nodes", index, "module"), str(exc))
            raise DataflowInvalid(report.lines()) from None
        renames[str(node.get("id"))] = outputs
        for item in inner:
            lines[("nodes", len(out))] = line
            out.append(item)
    for node in out:
        _rewrite_sources(node, renames)
    value = dict(top)
    value["nodes"] = out
    return Loaded(value=value, lines=lines, texts=texts, problems=loaded.problems)


def module_file_alone(report: f.Report, loaded: Loaded) -> Loaded:
    """A module file checked on its own (`flow check transform_module.yml`): its header's
    keys are checked and its `_mod/X` inputs, which only a module node can feed, dropped."""
    top = loaded.value
    if not isinstance(top, dict) or "module" not in top:
        return loaded
    header = top.get("module")
    if not isinstance(header, dict):
        report.add(("module",), f"expected the module's header mapping, got {f.describe(header)}")
    else:
        f.check_keys(report, header, ("module",), HEADER_KEYS, {})
    value = {k: v for k, v in top.items() if k != "module"}
    nodes = value.get("nodes")
    if isinstance(nodes, list):
        value["nodes"] = [_without_mod_inputs(n) for n in nodes]
    return Loaded(value=value, lines=loaded.lines, texts=loaded.texts, problems=loaded.problems)


def _without_mod_inputs(node: Any) -> Any:
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if not isinstance(inputs, dict):
        return node
    kept = {}
    for input_id, spec in inputs.items():
        source = spec.get("source") if isinstance(spec, dict) else spec
        if not (isinstance(source, str) and source.startswith(f"{MODULE_INPUT}/")):
            kept[input_id] = spec
    return {**node, "inputs": kept}


def _is_module(node: Any) -> bool:
    return isinstance(node, dict) and node.get("module") is not None


def _place(file: object, line: int, index: int, node: dict[str, Any]) -> str:
    """Where a module node is written, for a bound's line: `FILE:LINE: nodes[3] (m3, l4.yml)`."""
    return f"{file}:{line}: nodes[{index}] ({node.get('id')}, module {node.get('module')})"


def _move(loaded: Loaded, old: Where, new: Where, lines: dict[Where, int],
          texts: dict[Where, str]) -> None:  # fmt: skip
    for key, line in loaded.lines.items():
        if key[: len(old)] == old:
            lines[new + key[len(old) :]] = line
    for key, text in loaded.texts.items():
        if key[: len(old)] == old:
            texts[new + key[len(old) :]] = text


def _expand(
    report: f.Report,
    budget: _Budget,
    place: str,
    node: dict[str, Any],
    where: Where,
    folder: Path,
    depth: int,
    seen: frozenset[Path],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The inner nodes of module node `node` (ids prefixed) and its outputs' producers;
    `place` is where `node` is written, named when a bound of `budget` is crossed."""
    f.check_keys(report, node, where, MODULE_NODE_KEYS, MODULE_REFUSED)
    module_id = f.get_str(report, node, "id", where, required=True) or ""
    rel = f.get_str(report, node, "module", where) or ""
    file = (folder / rel).resolve()
    at = (*where, "module")
    if depth >= MAX_DEPTH or file in seen:
        why = "nests itself" if file in seen else f"nests more than {MAX_DEPTH} deep"
        report.add(at, f"module {rel} {why}")
        return [], {}
    budget.add_load(place)
    header, inner = _load(report, budget, place, file, at)
    if header is None:
        return [], {}
    given = node.get("inputs") or {}
    if not isinstance(given, dict):
        report.add((*where, "inputs"), f"expected a mapping of inputs, got {f.describe(given)}")
        given = {}
    required, optional = header["inputs"], header["inputs_optional"]
    for name in required:
        if name not in given:
            report.add((*where, "inputs"), f"module {rel} needs input '{name}'")
    for name in given:
        if name not in required and name not in optional:
            declared = ", ".join([*required, *optional]) or "none"
            report.add((*where, "inputs", name),
                       f"module {rel} has no input '{name}' (inputs: {declared})")  # fmt: skip
    env = node.get("env") if isinstance(node.get("env"), dict) else {}
    ids = {str(n.get("id")) for _, _, n in inner}
    produced: dict[str, list[str]] = {}
    result: list[dict[str, Any]] = []
    for index, line, raw in inner:
        child = dict(raw)
        child_id = f"{module_id}.{child.get('id')}"
        if _is_module(child):
            child.update(id=child_id, inputs=_inner_inputs(child, module_id, ids, given))
            nested, outs = _expand(report, budget, _place(file, line, index, raw), child, at,
                                   file.parent, depth + 1, seen | {file})  # fmt: skip
            for out, producer in outs.items():
                produced.setdefault(out, []).append(producer)
            result.extend(nested)
            continue
        child["id"] = child_id
        child["inputs"] = _inner_inputs(child, module_id, ids, given)
        path = child.get("path")
        if isinstance(path, str) and path != "dynamic" and ("/" in path or path.endswith(".py")):
            child["path"] = str((file.parent / path).resolve())
        if env:
            child["env"] = {**(child.get("env") or {}), **env}
        for out in child.get("outputs") or []:
            produced.setdefault(str(out), []).append(child_id)
        budget.add_node(place)
        result.append(child)
    outputs: dict[str, str] = {}
    for name in header["outputs"]:
        producers = produced.get(name, [])
        if len(producers) != 1:
            how = "no inner node produces it" if not producers else "several inner nodes do"
            report.add(at, f"module {rel} declares output '{name}' but {how}")
        else:
            outputs[name] = producers[0]
    return result, outputs


def _inner_inputs(node: dict[str, Any], module_id: str, ids: set[str],
                  given: dict[str, Any]) -> Any:  # fmt: skip
    """An inner node's inputs: `_mod/X` is what the module node gives X (dropped when an
    optional input is not given), a sibling's output gets the module's prefix."""
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        return inputs  # the parser reports it
    result: dict[str, Any] = {}
    for input_id, spec in inputs.items():
        source = spec.get("source") if isinstance(spec, dict) else spec
        if isinstance(source, str) and "/" in source and not f.is_timer(source):
            owner, _, port = source.partition("/")
            if owner == MODULE_INPUT:
                if port not in given:
                    continue
                source = given[port]
            elif owner in ids:
                source = f"{module_id}.{owner}/{port}"
        result[input_id] = {**spec, "source": source} if isinstance(spec, dict) else source
    return result


def _rewrite_sources(node: Any, renames: dict[str, dict[str, str]]) -> None:
    """`M/OUT` of a module M becomes the inner producer's `M.inner/OUT`."""
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if not isinstance(inputs, dict):
        return
    for input_id, spec in list(inputs.items()):
        source = spec.get("source") if isinstance(spec, dict) else spec
        if not isinstance(source, str):
            continue
        owner, _, port = source.partition("/")
        producer = renames.get(owner, {}).get(port)
        if producer is not None:
            new = f"{producer}/{port}"
            inputs[input_id] = {**spec, "source": new} if isinstance(spec, dict) else new


def _load(
    report: f.Report, budget: _Budget, place: str, file: Path, at: Where
) -> tuple[dict[str, list[str]] | None, list[tuple[int, int, dict[str, Any]]]]:
    """The module file's header (its port lists) and node mappings, each with its index
    and line in the file; None when unusable."""
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_MODULE_BYTES + 1)
        if len(data) > MAX_MODULE_BYTES:
            raise DataflowInvalid([f"{file}:1: the file is larger than {MAX_MODULE_BYTES} bytes"])
        budget.add_bytes(len(data), place)  # before parsing: the parse is the costly part
        loaded = load(data.decode("utf-8"))
        value = loaded.value
    except OSError as exc:
        report.add(at, f"cannot read the module file {file}: {exc.strerror}")
        return None, []
    except UnicodeDecodeError:
        report.add(at, f"{file}: the module file is not UTF-8 text")
        return None, []
    except YamlSyntaxError as exc:
        report.add(at, f"{file}:{exc.line}: {exc.message}")
        return None, []
    except DataflowInvalid as exc:
        report.add(at, exc.problems[0])
        return None, []
    header = value.get("module") if isinstance(value, dict) else None
    nodes = value.get("nodes") if isinstance(value, dict) else None
    if not isinstance(header, dict) or not isinstance(nodes, list):
        report.add(at, f"{file}: a module file has a 'module' mapping and a 'nodes' list")
        return None, []
    extra = sorted(set(value) - {"module", "nodes"}) + sorted(set(header) - HEADER_KEYS)
    if extra:
        report.add(at, f"{file}: keys not supported by flow in a module file: {', '.join(extra)}")
    ports: dict[str, list[str]] = {}
    for key in ("inputs", "inputs_optional", "outputs"):
        items = header.get(key) or []
        ports[key] = [str(p) for p in items] if isinstance(items, list) else []
    lines = loaded.lines
    return ports, [(i, lines.get(("nodes", i), 1), n) for i, n in enumerate(nodes)
                   if isinstance(n, dict)]  # fmt: skip
