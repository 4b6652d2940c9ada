"""Dataflow files (dora-compatible YAML) read into a validated, frozen model (SPEC 2)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.model import descriptor_dora as dora
from daemon.model import descriptor_fields as f
from daemon.model import executables, params
from daemon.model.descriptor_connects import node_connects
from daemon.model.descriptor_links import check_links
from daemon.model.descriptor_logs import check_logs_source, is_logs_source, wire_log_inputs
from daemon.model.descriptor_model import (
    MAX_NODES,
    Dataflow,
    Input,
    NodeSpec,
    OutputRef,
    RestartPolicy,
    Timer,
)
from daemon.model.descriptor_modules import expand_modules, module_file_alone
from daemon.model.errors import DataflowInvalid
from daemon.model.yaml_lines import Loaded, YamlSyntaxError, load

__all__ = [
    "MAX_NODES",
    "MAX_YAML_BYTES",
    "Dataflow",
    "Input",
    "NodeSpec",
    "OutputRef",
    "RestartPolicy",
    "Timer",
    "expand_env",
    "load_text",
    "parse_dataflow",
    "parse_loaded",
]

MAX_YAML_BYTES = 1 << 20

TOP_KEYS = frozenset({"nodes", "env", "name", "recover", "debug", "_unstable_debug", "deploy",
                      "health_check_interval"})  # fmt: skip
NODE_KEYS = frozenset({
    "id", "name", "description", "path", "args", "env", "inputs", "outputs", "build",
    "restart_policy", "max_restarts", "restart_window", "restart_delay", "max_restart_delay",
    "send_stdout_as", "deploy", "_unstable_deploy", "connects", "connect_timeout",
    "min_log_level", "output_types", "input_types", "send_logs_as", "max_log_size", "params",
    "health_check_timeout", "cpu_affinity", "spawn",
})  # fmt: skip
INPUT_KEYS = frozenset({"source", "queue_size", "queue_policy", "input_timeout"})
DEPLOY_KEYS = frozenset({"machine"})
RESTART_POLICIES = ("never", "on-failure", "always")
QUEUE_POLICIES = ("drop_oldest", "backpressure")
SPAWN_MODES = ("fork", "exec")  # a Python node from the run's fork server, or exec'd
MAX_QUEUE_SIZE = 1_000_000

Where = tuple[str | int, ...]  # a place in the file, e.g. ("nodes", 2, "inputs", "tick")


_ENV_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_env(value: str, environ: Mapping[str, str]) -> str:
    """`$VAR` and `${VAR}` from `environ`; an unknown variable becomes empty, as in shells."""
    return _ENV_RE.sub(lambda m: environ.get(m.group(1) or m.group(2), ""), value)


def parse_dataflow(
    path: Path,
    text: str | None = None,
    *,
    machines: frozenset[str] | None = None,
    check_paths: bool = True,
) -> Dataflow:
    """Read and validate a dataflow file; DataflowInvalid lists every problem at once.

    `check_paths=False` skips the existence checks of node paths, for `flow build`, whose
    build lines may be what creates them.
    """
    file = str(path)
    loaded = load_text(file, _read(path) if text is None else text, MAX_YAML_BYTES)
    return parse_loaded(file, path, loaded, machines=machines, check_paths=check_paths)


def load_text(file: str, text: str, limit: int) -> Loaded:
    """YAML text of at most `limit` bytes, loaded with its lines; DataflowInvalid naming
    `file` and the line otherwise (the one loader of dataflow files and node snippets)."""
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise DataflowInvalid([f"{file}:1: the file is larger than {limit} bytes"])
    try:
        return load(text)
    except YamlSyntaxError as exc:
        raise DataflowInvalid([f"{file}:{exc.line}: {exc.message}"]) from None


def parse_loaded(
    file: str,
    path: Path,
    loaded: Loaded,
    *,
    machines: frozenset[str] | None = None,
    check_paths: bool = True,
) -> Dataflow:
    """Validate YAML already loaded by `yaml_lines.load`; problems are written as `file`'s."""
    return _Parser(file, Path(os.path.abspath(path)), loaded, machines, check_paths).parse()


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise DataflowInvalid([f"{path}: cannot read the file: {exc.strerror}"]) from None
    if len(data) > MAX_YAML_BYTES:
        raise DataflowInvalid([f"{path}:1: the file is larger than {MAX_YAML_BYTES} bytes"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataflowInvalid([f"{path}:{line}: the file is not UTF-8 text"]) from None


class _Parser:
    """One pass over the loaded YAML, then the cross-node checks; problems pile up."""

    def __init__(
        self,
        file: str,
        path: Path,
        loaded: Loaded,
        machines: frozenset[str] | None,
        check_paths: bool,
    ) -> None:
        self.path = path
        self.check_paths = check_paths
        self.loaded = loaded
        self.machines = machines
        self.report = f.Report(file, loaded.lines)
        for where, line, message in loaded.problems:
            self.report.add(where, message, line=line)

    def parse(self) -> Dataflow:
        top = self.loaded.value
        report = self.report
        if not isinstance(top, dict):
            got = "empty" if top is None else f"{f.describe(top)}"
            report.add((), f"a dataflow file must be a mapping with a 'nodes' list, got {got}")
            raise DataflowInvalid(report.lines())
        self.loaded = module_file_alone(report, self.loaded)
        top = self.loaded.value
        f.check_keys(report, top, (), TOP_KEYS, dora.TOP)
        for key in ("debug", "_unstable_debug"):
            dora.check_debug(report, top, key)
        if top.get("deploy") is not None:  # `dora expand` writes `deploy: null`
            report.add(("deploy",), "a dataflow-wide deploy is not supported by flow: "
                                    + dora.TOP["_unstable_deploy"])  # fmt: skip
        self.loaded = expand_modules(report, self.loaded, self.path.parent)
        top = self.loaded.value
        name = f.get_run_name(report, top)
        recover = f.get_bool(report, top, "recover", (), default=True)
        env = f.env_map(report, top.get("env"), ("env",), self.loaded.texts)
        nodes = self._nodes(top)
        every = f.get_duration(report, top, "health_check_interval", ()) or 5.0  # dora's default
        if report:
            raise DataflowInvalid(report.lines())
        return Dataflow(path=self.path, name=name, env=env, recover=recover, nodes=nodes,
                        health_check_interval=every)  # fmt: skip

    def _nodes(self, top: dict[str, Any]) -> tuple[NodeSpec, ...]:
        items = top.get("nodes")
        if "nodes" not in top:
            self.report.add(("nodes",), "required field missing", line=1)
            return ()
        if not isinstance(items, list) or not items:
            got = "an empty list" if items == [] else f.describe(items)
            self.report.add(("nodes",), f"expected a list of nodes, got {got}")
            return ()
        if len(items) > MAX_NODES:
            self.report.add(
                ("nodes",), f"{len(items)} nodes, more than the {MAX_NODES} a dataflow may hold"
            )
            return ()
        nodes: list[tuple[Where, NodeSpec]] = []
        for index, item in enumerate(items):
            where: Where = ("nodes", index)
            if not isinstance(item, dict):
                self.report.add(where, f"expected a node mapping, got {f.describe(item)}")
                continue
            nodes.append((where, self._node(item, where)))
        self._check_ids(nodes)
        wire_log_inputs(self.report, nodes)
        check_links(self.report, nodes)
        return tuple(node for _, node in nodes)

    def _node(self, raw: dict[str, Any], where: Where) -> NodeSpec:
        report = self.report
        f.check_keys(report, raw, where, NODE_KEYS, dora.NODE)
        node_id = f.get_str(report, raw, "id", where, required=True) or ""
        if node_id and not f.ID_RE.fullmatch(node_id):
            report.add((*where, "id"), f"invalid node id '{node_id}': {f.ID_RULE}")
        elif node_id in f.BUILT_IN_SOURCES:  # `dora/...` and `flow/...` name built-in sources
            report.add((*where, "id"), f"node id '{node_id}' is reserved: sources that begin "
                                       f"with '{node_id}/' are timers and logs")  # fmt: skip
        # a dora operator/ros2/... node already got "not supported"; "path missing" is noise
        needs_path = not (raw.keys() & dora.NODE_SOURCES)
        path = f.get_str(report, raw, "path", where, required=needs_path) or ""
        outputs = self._outputs(raw.get("outputs"), (*where, "outputs"))
        # the keeper sends one output for a node: its stdout lines, or (dora's
        # `send_logs_as`) its log records; both keys read into `send_stdout_as`
        key = "send_logs_as" if raw.get("send_logs_as") is not None else "send_stdout_as"
        if key == "send_logs_as" and raw.get("send_stdout_as") is not None:
            report.add((*where, key), "give send_stdout_as or send_logs_as, not both")
        send_stdout_as = f.get_str(report, raw, key, where)
        if send_stdout_as is not None and send_stdout_as not in outputs:
            report.add(
                (*where, key),
                f"'{send_stdout_as}' is not one of the node's outputs (declare it in outputs)",
            )
        executable = (  # a refused node's path is not looked for either: one cause is enough
            executables.resolve(report, self.path.parent, path, (*where, "path"), self.check_paths)
            if path and needs_path
            else None
        )
        args = self._args(raw.get("args"), (*where, "args"))
        inputs = self._inputs(raw.get("inputs"), (*where, "inputs"))
        return NodeSpec(
            id=node_id,
            name=f.get_str(report, raw, "name", where),
            description=f.get_str(report, raw, "description", where),
            path=path,
            executable=executable,
            args=args,
            env=dora.node_env(report, raw, where, self.loaded.texts),
            inputs=inputs,
            outputs=outputs,
            build=f.get_shell_lines(self.report, raw, "build", where),
            restart=self._restart(raw, where),
            send_stdout_as=send_stdout_as,
            sends_logs=key == "send_logs_as",
            log_max_bytes=dora.log_size(report, raw, where),
            machine=self._machine(raw, where),
            raw=raw,
            line=report.line_of(where),
            connects=node_connects(
                report, raw, where, (path, executable, args), inputs, outputs, send_stdout_as
            ),
            connect_timeout=f.get_duration(report, raw, "connect_timeout", where),
            health_check_timeout=f.get_duration(report, raw, "health_check_timeout", where),
            cpu_affinity=dora.cpu_affinity(report, raw, where),
            spawn=f.get_choice(report, raw, "spawn", where, SPAWN_MODES),
            output_types=dora.port_types(report, raw, "output_types", where, outputs),
            input_types=dora.port_types(report, raw, "input_types", where,
                                        tuple(i.id for i in inputs)),
            params=params.from_yaml(report, raw, where),
        )  # fmt: skip

    def _args(self, value: Any, where: Where) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                self.report.add(where, f"cannot split the arguments: {exc}")
                return ()
        if isinstance(value, list):
            args = []
            for i, item in enumerate(value):
                if item is None or isinstance(item, list | dict):
                    self.report.add((*where, i), f"expected a string, got {f.describe(item)}")
                else:
                    args.append(self.loaded.texts.get((*where, i), str(item)))
            return tuple(args)
        self.report.add(where, f"expected a string or a list, got {f.describe(value)}")
        return ()

    def _outputs(self, value: Any, where: Where) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.report.add(where, f"expected a list of output ids, got {f.describe(value)}")
            return ()
        outputs: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not f.ID_RE.fullmatch(item):
                cause = f.ID_RULE if isinstance(item, str) else f"got {f.describe(item)}"
                self.report.add((*where, i), f"invalid output id {item!r}: {cause}")
            elif item in outputs:
                self.report.add((*where, i), f"output '{item}' is declared twice")
            else:
                outputs.append(item)
        return tuple(outputs)

    def _inputs(self, value: Any, where: Where) -> tuple[Input, ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.report.add(where, f"expected a mapping of inputs, got {f.describe(value)}")
            return ()
        inputs = []
        for input_id, spec in value.items():
            item = self._input(input_id, spec, (*where, input_id))
            if item is not None:
                inputs.append(item)
        return tuple(inputs)

    def _input(self, input_id: str, spec: Any, where: Where) -> Input | None:
        report = self.report
        if not f.ID_RE.fullmatch(input_id):
            report.add(where, f"invalid input id '{input_id}': {f.ID_RULE}")
            return None
        queue_size, policy, source_where, timeout = 10, "drop_oldest", where, None
        if isinstance(spec, dict):
            timeout = f.get_duration(report, spec, "input_timeout", where)
            f.check_keys(report, spec, where, INPUT_KEYS, dora.INPUT)
            size = f.get_number(report, spec, "queue_size", where, 10, integer=True, minimum=1,
                                inclusive=True)  # fmt: skip
            if size > MAX_QUEUE_SIZE:
                report.add((*where, "queue_size"), f"must be at most {MAX_QUEUE_SIZE}")
            queue_size = int(size)
            policy = f.get_choice(report, spec, "queue_policy", where, QUEUE_POLICIES)
            source_where = (*where, "source")
            spec = f.get_str(report, spec, "source", where, required=True)
            if spec is None:
                return None
        if not isinstance(spec, str):
            report.add(
                where, f"expected 'node/output', a timer or a mapping, got {f.describe(spec)}"
            )
            return None
        if is_logs_source(spec):  # wired once every node is read (descriptor_logs)
            problem = check_logs_source(spec)
            if problem is not None:
                report.add(source_where, problem)
                return None
            source_ref = OutputRef(*f.split_source(spec))
            return Input(id=input_id, source=source_ref, queue_size=queue_size,
                         queue_policy=policy)  # fmt: skip
        try:
            if f.is_timer(spec):
                source: Timer | OutputRef = Timer(period_ns=f.timer_period_ns(spec), spec=spec)
            elif spec.partition("/")[0] in f.BUILT_IN_SOURCES:
                raise f.SourceError(f.built_in_problem(spec))
            else:
                source = OutputRef(*f.split_source(spec))
        except f.SourceError as exc:
            report.add(source_where, str(exc))
            return None
        return Input(id=input_id, source=source, queue_size=queue_size, queue_policy=policy,
                     input_timeout=timeout)  # fmt: skip

    def _restart(self, raw: dict[str, Any], where: Where) -> RestartPolicy:
        report, d = self.report, RestartPolicy()
        return RestartPolicy(
            policy=f.get_choice(report, raw, "restart_policy", where, RESTART_POLICIES),
            # 0: no limit, as in dora (`dora expand` writes it for every node)
            max_restarts=int(f.get_number(report, raw, "max_restarts", where, d.max_restarts,
                                          integer=True, minimum=0, inclusive=True)),
            restart_window=f.get_number(report, raw, "restart_window", where, d.restart_window),
            restart_delay=f.get_number(report, raw, "restart_delay", where, d.restart_delay,
                                       inclusive=True),  # 0: at once (a forked node)
            max_restart_delay=f.get_number(report, raw, "max_restart_delay", where,
                                           d.max_restart_delay),
        )  # fmt: skip

    def _machine(self, raw: dict[str, Any], where: Where) -> str | None:
        keys = [k for k in ("deploy", "_unstable_deploy") if raw.get(k) is not None]
        if len(keys) == 2:
            self.report.add((*where, "_unstable_deploy"), "give either deploy or _unstable_deploy")
        if not keys:
            return None
        deploy, at = raw[keys[0]], (*where, keys[0])
        if not isinstance(deploy, dict):
            self.report.add(
                at, f"expected a mapping like {{machine: NAME}}, got {f.describe(deploy)}"
            )
            return None
        f.check_keys(self.report, deploy, at, DEPLOY_KEYS, dora.DEPLOY)
        machine = f.get_str(self.report, deploy, "machine", at)
        if machine is not None and self.machines is not None and machine not in self.machines:
            self.report.add((*at, "machine"), f"machine '{machine}' is not served by any daemon")
        return machine

    def _check_ids(self, nodes: list[tuple[Where, NodeSpec]]) -> None:
        first: dict[str, int] = {}
        for where, node in nodes:
            if node.id in first:
                message = f"duplicate node id '{node.id}' (first at line {first[node.id]})"
                self.report.add((*where, "id"), message)
            elif node.id:
                first[node.id] = node.line
