"""`FLOW_NODE_CONFIG` (docs/protocol.md) parsed into frozen specs.

Plain dataclasses rather than attrs: every node process pays this import, and the stdlib
module is already loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from node_sdk.errors import NodeError

ENV_VAR: Final = "FLOW_NODE_CONFIG"
POLICIES: Final = ("drop_oldest", "backpressure")


@dataclass(frozen=True, slots=True)
class DataInput:
    """An input fed by other nodes' outputs over a PULL socket bound at `endpoint`."""

    id: str
    endpoint: str
    queue_size: int
    policy: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TimerInput:
    """An input that ticks in this process every `period_ns`."""

    id: str
    period_ns: int


@dataclass(frozen=True, slots=True)
class Edge:
    """One (output, receiving input) pair: this node connects a PUSH to `endpoint`."""

    endpoint: str
    node: str
    input: str
    policy: str
    queue_size: int = 10  # the receiving input's; bounds a backpressure sender's SNDHWM

    @property
    def receiver(self) -> str:
        return f"{self.node}/{self.input}"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a spawned node needs to join its run."""

    run: str
    run_name: str | None
    node: str
    generation: int
    restarts: int
    daemon: str
    descriptor: str | None
    config: Mapping[str, Any]
    inputs: Mapping[str, DataInput | TimerInput]
    outputs: Mapping[str, tuple[Edge, ...]]
    shm_threshold: int = 65536
    daemon_grace_s: float = 30.0
    start_timeout_s: float = 30.0  # the daemon's settings: a node never reads its own
    send_timeout_s: float = 10.0

    @property
    def data_inputs(self) -> list[DataInput]:
        return [i for i in self.inputs.values() if isinstance(i, DataInput)]

    @property
    def timer_inputs(self) -> list[TimerInput]:
        return [i for i in self.inputs.values() if isinstance(i, TimerInput)]


def from_env(environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read `FLOW_NODE_CONFIG`; NodeError when it is absent or malformed."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR)
    if not text:
        raise NodeError(
            f"no {ENV_VAR} in the environment: start this node with flow, "
            "or pass a node id to attach as a dynamic node"
        )
    return parse(text)


def parse(text: str | bytes) -> NodeConfig:
    """Parse the JSON text of a node configuration."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise NodeError(f"bad {ENV_VAR}: not JSON ({exc})") from None
    return from_mapping(raw, ENV_VAR)


def from_mapping(raw: Any, what: str) -> NodeConfig:
    """Build a configuration from decoded JSON; NodeError names `what` when it is malformed."""
    try:
        return _build(_obj(raw, "$"))
    except (KeyError, TypeError, ValueError) as exc:
        raise NodeError(f"bad {what}: {exc}") from None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{where} is not an object")
    return value


def _str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise TypeError(f"{where}.{key} must be a non-empty string")
    return value


def _int(raw: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{where}.{key} must be a non-negative integer")
    return value


def _seconds(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1e9:
        raise TypeError(f"$.{key} must be a positive number of seconds")
    return float(value)


def _policy(raw: Mapping[str, Any], where: str) -> str:
    policy = raw.get("policy", "drop_oldest")
    if policy not in POLICIES:
        raise ValueError(f"{where}.policy {policy!r} is not one of {', '.join(POLICIES)}")
    return str(policy)


def _build(raw: dict[str, Any]) -> NodeConfig:
    inputs: dict[str, DataInput | TimerInput] = {}
    for input_id, spec in _obj(raw.get("inputs", {}), "$.inputs").items():
        where = f"$.inputs.{input_id}"
        spec = _obj(spec, where)
        if "timer_ns" in spec:
            period = _int(spec, "timer_ns", where)
            if period <= 0:
                raise ValueError(f"{where}.timer_ns must be > 0")
            inputs[input_id] = TimerInput(input_id, period)
            continue
        sources = spec.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise TypeError(f"{where}.sources must be a list of strings")
        size = _int(spec, "queue_size", where, 10)
        if size < 1:
            raise ValueError(f"{where}.queue_size must be >= 1")
        inputs[input_id] = DataInput(
            input_id, _str(spec, "endpoint", where), size, _policy(spec, where), tuple(sources)
        )
    outputs: dict[str, tuple[Edge, ...]] = {}
    for output_id, edges in _obj(raw.get("outputs", {}), "$.outputs").items():
        if not isinstance(edges, list):
            raise TypeError(f"$.outputs.{output_id} must be a list of edges")
        built = []
        for n, edge in enumerate(edges):
            where = f"$.outputs.{output_id}[{n}]"
            edge = _obj(edge, where)
            built.append(
                Edge(
                    _str(edge, "endpoint", where),
                    _str(edge, "node", where),
                    _str(edge, "input", where),
                    _policy(edge, where),
                    max(_int(edge, "queue_size", where, 10), 1),
                )
            )
        outputs[output_id] = tuple(built)
    descriptor = raw.get("descriptor")
    run_name = raw.get("run_name")
    grace = raw.get("daemon_grace_s", 30.0)
    if not isinstance(grace, int | float) or isinstance(grace, bool):
        raise TypeError("$.daemon_grace_s must be a number")
    return NodeConfig(
        run=_str(raw, "run", "$"),
        run_name=run_name if isinstance(run_name, str) else None,
        node=_str(raw, "node", "$"),
        generation=_int(raw, "generation", "$", 1),
        restarts=_int(raw, "restarts", "$", 0),
        daemon=_str(raw, "daemon", "$"),
        descriptor=descriptor if isinstance(descriptor, str) else None,
        config=_obj(raw.get("config") or {}, "$.config"),
        inputs=inputs,
        outputs=outputs,
        shm_threshold=_int(raw, "shm_threshold", "$", 65536),
        daemon_grace_s=float(grace),
        start_timeout_s=_seconds(raw, "start_timeout_s", 30.0),
        send_timeout_s=_seconds(raw, "send_timeout_s", 10.0),
    )
