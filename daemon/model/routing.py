"""Wiring of a run: socket endpoints and each node's `FLOW_NODE_CONFIG` (docs/protocol.md).

The configuration is built as `node_sdk.config.NodeConfig`, the class the node decodes it
into, so both ends share one definition of the format.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs

from daemon.model.descriptor import Dataflow, Input, NodeSpec, OutputRef, Timer, expand_env
from daemon.model.keeper_messages import StdoutKeys
from daemon.model.settings import Settings
from node_sdk import config
from node_sdk.config import DataInput, Edge, NodeConfig, TcpSecurity, TimerInput

DEFAULT_SHM_THRESHOLD = 64 * 1024


@attrs.frozen
class MachinePlace:
    """A machine of a run placed on several: the host its peers reach it at, its key."""

    host: str
    public_key: str  # Z85


@attrs.frozen
class Placement:
    """Where a run's nodes run (docs/cluster.md, "Placement"), for their configurations.

    An input fed from another machine is bound on `tcp://HOST:PORT` of its own machine
    (`ports`, reserved there); its senders name that machine's key. `secret_file` is the
    coordinator's own key file: a member puts its own in before it spawns a node.
    """

    machine_of: dict[str, str]  # node id -> machine name
    machines: dict[str, MachinePlace]
    ports: dict[tuple[str, str], int]  # (node, input) fed across machines -> its port
    secret_file: str
    heartbeat_s: float
    timeout_s: float
    grace_s: float

    def crossing(self, df: Dataflow) -> list[tuple[str, str]]:
        """The (node, input) pairs fed by a node on another machine (once each: an input
        fed by several binds one endpoint)."""
        pairs = {
            (node.id, spec.id): None
            for node in df.nodes
            for spec in node.inputs
            if isinstance(spec.source, OutputRef)
            and self.machine_of[spec.source.node] != self.machine_of[node.id]
        }
        return list(pairs)


def place_nodes(dataflow: Dataflow, here: str, members: Collection[str]) -> dict[str, str]:
    """Node id -> the machine it runs on: its `deploy.machine` when that is an admitted
    member, else the coordinator (`here`)."""
    return {n.id: n.machine if n.machine and n.machine in members else here
            for n in dataflow.nodes}  # fmt: skip


def input_endpoints(
    df: Dataflow, run_sockets: Path, placement: Placement | None = None
) -> dict[tuple[str, str], str]:
    """The endpoint each data input binds, keyed by (node id, input id).

    Endpoints use positions, not ids, so that ids never become paths and stay short.
    """
    endpoints: dict[tuple[str, str], str] = {}
    for n, node in enumerate(df.nodes):
        for i, spec in enumerate(node.inputs):
            if isinstance(spec.source, OutputRef):
                endpoints[(node.id, spec.id)] = f"ipc://{run_sockets / f'n{n}i{i}'}"
    if placement is not None:
        for node_id, input_id in placement.crossing(df):
            host = placement.machines[placement.machine_of[node_id]].host
            port = placement.ports[(node_id, input_id)]
            endpoints[(node_id, input_id)] = f"tcp://{host}:{port}"
    return endpoints


def build_node_config(
    df: Dataflow,
    node: NodeSpec,
    *,
    run_id: str,
    run_name: str | None,
    generation: int,
    restarts: int,
    daemon_endpoint: str,
    descriptor_copy: Path,
    endpoints: Mapping[tuple[str, str], str],
    settings: Settings,
    placement: Placement | None = None,
) -> NodeConfig:
    """The configuration of one node process."""
    inputs: dict[str, DataInput | TimerInput] = {}
    for spec in node.inputs:
        if isinstance(spec.source, Timer):
            inputs[spec.id] = TimerInput(spec.id, spec.source.period_ns)
        else:
            item = data_input(spec, spec.source, endpoints[(node.id, spec.id)])
            known = inputs.get(spec.id)
            if isinstance(known, DataInput):  # fan-in (a live `node connect`): one endpoint
                item = dataclasses.replace(known, sources=(*known.sources, *item.sources))
            inputs[spec.id] = item
    outputs = _edges(df, node, endpoints)
    # the daemon itself sends on `send_stdout_as`, so the node must neither send nor close it
    outputs.pop(node.send_stdout_as or "", None)
    if placement is not None:  # an edge to another machine names its key (CURVE)
        outputs = _with_keys(outputs, placement)
    return NodeConfig(
        run=run_id,
        run_name=run_name,
        node=node.id,
        generation=generation,
        restarts=restarts,
        daemon=daemon_endpoint,
        descriptor=str(descriptor_copy),
        config=dict(node.raw),
        inputs=inputs,
        outputs={out: tuple(edges) for out, edges in outputs.items()},
        shm_threshold=DEFAULT_SHM_THRESHOLD,
        daemon_grace_s=settings.daemon_grace,
        # a node waits for its start as long as the slowest node may take to connect
        start_timeout_s=max(
            [settings.start_timeout, *(n.connect_timeout or 0.0 for n in df.nodes)]
        ),
        send_timeout_s=settings.send_timeout,
        restartable=node.restart.policy != "never",
        tcp=_tcp_section(node, inputs, outputs, placement, _to_dynamic(df, node, endpoints)),
    )


def _with_keys(outputs: dict[str, list[Edge]], placement: Placement) -> dict[str, list[Edge]]:
    """The edges, those to a tcp:// receiver with its machine's public key."""

    def keyed(edge: Edge) -> Edge:
        if not config.is_tcp(edge.endpoint):
            return edge
        key = placement.machines[placement.machine_of[edge.node]].public_key
        return dataclasses.replace(edge, server_key=key)

    return {out: [keyed(edge) for edge in edges] for out, edges in outputs.items()}


def keyed_edge(edge: Edge, placement: Placement | None) -> Edge:
    """`edge`, naming its receiving machine's key when it goes to another machine."""
    if placement is None:
        return edge
    return _with_keys({"": [edge]}, placement)[""][0]


def _to_dynamic(
    df: Dataflow, node: NodeSpec, endpoints: Mapping[tuple[str, str], str]
) -> list[str]:
    """The endpoints of the dynamic receivers of `node`'s outputs: wired live while one is
    attached (daemon/run/dynamic.py), so a node feeding one on another machine needs its
    keys from the start."""
    return [endpoints[(receiver.id, spec.id)] for receiver in df.nodes if receiver.is_dynamic
            for spec in receiver.inputs if isinstance(spec.source, OutputRef)
            and spec.source.node == node.id]  # fmt: skip


def _tcp_section(
    node: NodeSpec,
    inputs: Mapping[str, DataInput | TimerInput],
    outputs: Mapping[str, list[Edge]],
    placement: Placement | None,
    live: list[str],
) -> TcpSecurity | None:
    """The keys of a node with a tcp:// input or edge (`live`: wired later), or with an
    output in a placed run (a recorder on the coordinator is wired to it over tcp://,
    daemon/run/recording.py); None for every other node."""
    endpoints = [i.endpoint for i in inputs.values() if isinstance(i, DataInput)]
    endpoints += [e.endpoint for edges in outputs.values() for e in edges] + live
    if placement is None or not (node.outputs or any(config.is_tcp(e) for e in endpoints)):
        return None
    own = placement.machines[placement.machine_of[node.id]]
    return TcpSecurity(
        public_key=own.public_key,
        secret_file=placement.secret_file,
        admitted=tuple(sorted({m.public_key for m in placement.machines.values()})),
        heartbeat_ivl_s=placement.heartbeat_s,
        heartbeat_timeout_s=placement.timeout_s,
        link_grace_s=placement.grace_s,
    )


def node_config(df: Dataflow, node: NodeSpec, **how: Any) -> dict[str, Any]:
    """The JSON object of `build_node_config(df, node, **how)`."""
    return config.to_json(build_node_config(df, node, **how))


def _edges(
    df: Dataflow, node: NodeSpec, endpoints: Mapping[tuple[str, str], str]
) -> dict[str, list[Edge]]:
    outputs: dict[str, list[Edge]] = {out: [] for out in node.outputs}
    for receiver in df.nodes:
        if receiver.is_dynamic:
            continue  # wired live while it is attached (daemon/run/dynamic.py)
        for spec in receiver.inputs:
            source = spec.source
            if isinstance(source, OutputRef) and source.node == node.id:
                edge = edge_to(receiver.id, spec, endpoints[(receiver.id, spec.id)])
                outputs[source.output].append(edge)
    return outputs


def edge_to(receiver: str, spec: Input, endpoint: str) -> Edge:
    """The edge that feeds input `spec` of node `receiver`, bound at `endpoint`: what a
    sender's configuration lists and what a live `wire` carries (one definition of both)."""
    return Edge(endpoint, receiver, spec.id, spec.queue_policy, spec.queue_size)


def data_input(spec: Input, source: OutputRef, endpoint: str) -> DataInput:
    """Input `spec`, fed by `source`, as its node binds it (in its configuration or a live
    `add_input`)."""
    return DataInput(
        spec.id, endpoint, spec.queue_size, spec.queue_policy, (f"{source.node}/{source.output}",),
        spec.input_timeout or 0.0,
    )  # fmt: skip


def output_edges(
    df: Dataflow,
    node: NodeSpec,
    endpoints: Mapping[tuple[str, str], str],
    placement: Placement | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per output of `node`: every receiving input, with its endpoint and queue policy (and
    a tcp:// receiver's machine key, in a run placed on several machines)."""
    edges = _edges(df, node, endpoints)
    if placement is not None:
        edges = _with_keys(edges, placement)
    return {out: [config.edge_json(e) for e in items] for out, items in edges.items()}


def stdout_keys(
    node: NodeSpec, edges: list[dict[str, Any]], placement: Placement | None
) -> StdoutKeys | None:
    """The keys a keeper sends `node`'s stdout lines with when one of `edges` goes to
    another machine (docs/cluster-data.md); None when all stay on the node's machine."""
    if placement is None or not any(config.is_tcp(edge["endpoint"]) for edge in edges):
        return None
    own = placement.machines[placement.machine_of[node.id]]
    return StdoutKeys(own.public_key, placement.secret_file,
                      max(1, round(placement.heartbeat_s * 1000)),
                      max(1, round(placement.timeout_s * 1000)))  # fmt: skip


def node_environment(
    df: Dataflow,
    node: NodeSpec,
    base: Mapping[str, str],
    extra: Mapping[str, str],
) -> dict[str, str]:
    """Caller's (or daemon's) environment < dataflow `env` < `--env` < node `env`."""
    env = dict(base)
    for layer in (df.env, extra, node.env):
        for key, value in layer.items():
            env[key] = expand_env(value, env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_argv(node: NodeSpec) -> list[str]:
    """The command line of a node: `.py` files run with flow's own interpreter, unbuffered."""
    if node.executable is None:
        raise ValueError(f"node {node.id!r} has no executable")
    if node.is_python:
        return [sys.executable, "-u", node.executable, *node.args]
    return [node.executable, *node.args]
