"""The frozen model of a validated dataflow file (built by `daemon.model.descriptor`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

# Validation is linear, but a daemon should not spend seconds on one hostile file; module
# expansion (descriptor_modules) counts against it too, as it goes.
MAX_NODES = 1024


@attrs.frozen
class Timer:
    """A timer input: ticks every `period_ns` in the receiving node's process."""

    period_ns: int
    spec: str  # as written, e.g. "dora/timer/millis/100"


@attrs.frozen
class OutputRef:
    """`node/output`, split at the first `/`."""

    node: str
    output: str

    def __str__(self) -> str:
        return f"{self.node}/{self.output}"


@attrs.frozen
class Input:
    id: str
    source: Timer | OutputRef
    queue_size: int = 10
    queue_policy: str = "drop_oldest"  # or "backpressure"
    input_timeout: float | None = None  # dora's: seconds of silence that close it for a while


@attrs.frozen
class RestartPolicy:
    policy: str = "never"  # never | on-failure | always
    max_restarts: int = 5  # more than this many restarts inside restart_window: failed; 0: never
    restart_window: float = 60.0
    restart_delay: float = 0.5  # doubles on each restart up to max_restart_delay
    max_restart_delay: float = 30.0


@attrs.frozen
class NodeSpec:
    id: str
    name: str | None
    description: str | None
    path: str  # as written
    executable: str | None  # absolute resolved path; None for dynamic nodes
    args: tuple[str, ...]
    env: Mapping[str, str]  # stringified, not expanded (the daemon expands at spawn)
    inputs: tuple[Input, ...]  # in file order
    outputs: tuple[str, ...]
    build: tuple[str, ...]
    restart: RestartPolicy
    send_stdout_as: str | None  # the output the keeper sends for the node
    machine: str | None
    raw: Mapping[str, Any]  # the node's mapping as written, for node_config()
    line: int
    # says hello on the node channel (an SDK node); False: a process node, which the start
    # barrier does not wait for (daemon/model/descriptor_connects.py)
    connects: bool = True
    connect_timeout: float | None = None  # seconds to connect at the start; None: start_timeout
    log_max_bytes: int | None = None  # its log's rotation size; None: the setting
    spawn: str = "fork"  # "exec": never from the run's fork server (daemon/keeper/forking.py)
    logs_level: int = 0  # the lowest level of the records it sends (for dora/logs inputs)
    sends_logs: bool = False  # `send_stdout_as` carries its log records (dora's send_logs_as)
    # dora's type names per port (`output_types` / `input_types`), checked by the parser
    output_types: Mapping[str, str] = attrs.field(factory=dict)
    input_types: Mapping[str, str] = attrs.field(factory=dict)
    params: Mapping[str, str] = attrs.field(factory=dict)  # initial values: key -> JSON text
    # dora's: seconds its own thread may stay away from next() and sends before it is killed
    health_check_timeout: float | None = None
    cpu_affinity: tuple[int, ...] | None = None  # dora's: the CPUs the node's process runs on

    @property
    def is_dynamic(self) -> bool:
        return self.path == "dynamic"

    @property
    def is_python(self) -> bool:
        return self.path.endswith(".py")

    def input(self, id: str) -> Input:
        for item in self.inputs:
            if item.id == id:
                return item
        raise KeyError(id)


@attrs.frozen
class Dataflow:
    path: Path  # absolute
    name: str | None
    env: Mapping[str, str]
    recover: bool
    nodes: tuple[NodeSpec, ...]
    health_check_interval: float = 5.0  # dora's: how often health_check_timeouts are checked

    @property
    def folder(self) -> Path:
        return self.path.parent

    def node(self, id: str) -> NodeSpec:
        for node in self.nodes:
            if node.id == id:
                return node
        raise KeyError(id)

    @property
    def connections(self) -> int:
        """Node-to-node input mappings (timers are not connections)."""
        return sum(isinstance(i.source, OutputRef) for n in self.nodes for i in n.inputs)
