"""`FLOW_NODE_CONFIG` (docs/protocol.md): frozen specs, their JSON form, one total decoder.

Both ends use these classes: the daemon builds a `NodeConfig` (daemon/model/routing.py)
and encodes it with `to_json`; the node decodes it with `parse` (or `from_json` inside
an attach reply), which gives a `NodeConfig` or a `NodeError` for any input at all.
Plain dataclasses, not attrs + cattrs: every node process pays this import (see
docs/protocol.md, "Why the node channel does not use cattrs").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from node_sdk.errors import NodeError
from node_sdk.strictjson import Fields, loads

ENV_VAR: Final = "FLOW_NODE_CONFIG"
POLICIES: Final = ("drop_oldest", "backpressure")
MAX_CONFIG_BYTES: Final = 1 << 20
MAX_CONFIG_DEPTH: Final = 64  # the node's own YAML mapping travels inside
MAX_ID: Final = 64  # node, input and output ids (SPEC 2)
MAX_GENERATION: Final = 2**31
MAX_QUEUE: Final = 1_000_000
MAX_INPUT_TIMEOUT_S: Final = 86400.0
MAX_ITEMS: Final = 10_000  # inputs, outputs, edges of one output, sources of one input
MAX_ENDPOINT: Final = 1024
MAX_KEYS: Final = 4096  # admitted machine keys of one node
KEY_LEN: Final = 40  # a CURVE public key in Z85 text
Z85: Final = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)


@dataclass(frozen=True, slots=True)
class DataInput:
    """An input fed by other nodes' outputs over a PULL socket bound at `endpoint`."""

    id: str
    endpoint: str
    queue_size: int
    policy: str
    sources: tuple[str, ...]
    # dora's `input_timeout`: seconds of silence after which the input is closed until a
    # message comes again (inbox.py); 0: none
    timeout_s: float = 0.0


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
    server_key: str | None = None  # a tcp:// receiver's machine public key (Z85), for CURVE

    @property
    def receiver(self) -> str:
        return f"{self.node}/{self.input}"


@dataclass(frozen=True, slots=True)
class TcpSecurity:
    """What a node with a tcp:// input or edge needs (docs/cluster-data.md): its machine's
    CURVE key pair (the secret in a private file, never in the environment), the machine
    keys its tcp:// inputs admit, and the heartbeat that bounds noticing a dead peer."""

    public_key: str  # Z85
    secret_file: str  # absolute; mode 0600, owned by the node's user (checked at start)
    admitted: tuple[str, ...]  # Z85 public keys of the machines allowed to send here
    heartbeat_ivl_s: float = 1.0
    heartbeat_timeout_s: float = 3.0
    link_grace_s: float = 0.0  # a source whose link broke is closed after this


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
    # its restart policy may bring it back: its end-of-stream ends a generation, not the
    # stream (the daemon closes its receivers once it has ended for good)
    restartable: bool = False
    tcp: TcpSecurity | None = None  # required when any endpoint is tcp://

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
    """The JSON text of a node configuration -> NodeConfig; NodeError for anything else."""
    what = f"bad {ENV_VAR}"
    return from_json(
        loads(text, what, max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_CONFIG_DEPTH), what
    )


def from_json(raw: object, what: str) -> NodeConfig:
    """A configuration from decoded (bounded) JSON; NodeError names `what` and the key."""
    top = Fields(raw, what)
    inputs: dict[str, DataInput | TimerInput] = {}
    for input_id in _ids(top, "inputs"):
        spec = top.obj("inputs").obj(input_id)
        if spec.has("timer_ns"):
            inputs[input_id] = TimerInput(input_id, spec.integer("timer_ns", 1, 2**63 - 1))
        else:
            inputs[input_id] = data_input(spec, input_id)
    outputs: dict[str, tuple[Edge, ...]] = {}
    for output_id in _ids(top, "outputs"):
        edges = top.raw["outputs"][output_id]
        if not isinstance(edges, list) or len(edges) > MAX_ITEMS:
            top.fail(f"outputs.{output_id}", f"must be a list of at most {MAX_ITEMS} edges")
        where = f"$.outputs.{output_id}"
        outputs[output_id] = tuple(
            edge(Fields(e, what, f"{where}[{n}]")) for n, e in enumerate(edges)
        )
    tcp = tcp_security(top.obj("tcp")) if top.raw.get("tcp") is not None else None
    _check_tcp(top, tcp, inputs, outputs)
    return NodeConfig(
        run=top.text("run", max_len=128),
        run_name=top.opt_text("run_name", max_len=1024),
        node=top.text("node", max_len=MAX_ID),
        generation=top.integer("generation", 0, MAX_GENERATION, 1),
        restarts=top.integer("restarts", 0, MAX_GENERATION, 0),
        daemon=top.text("daemon", max_len=MAX_ENDPOINT),
        descriptor=top.opt_text("descriptor"),
        config=top.mapping("config", max_items=MAX_ITEMS),
        inputs=inputs,
        outputs=outputs,
        shm_threshold=top.integer("shm_threshold", 0, 2**62, 65536),
        daemon_grace_s=top.number("daemon_grace_s", 0.0, 1e6, 30.0),
        start_timeout_s=top.number("start_timeout_s", 0.001, 1e6, 30.0),
        send_timeout_s=top.number("send_timeout_s", 0.001, 1e6, 10.0),
        restartable=top.flag("restartable"),
        tcp=tcp,
    )


def tcp_security(spec: Fields) -> TcpSecurity:
    """The `tcp` keys of a configuration."""
    secret_file = spec.text("secret_file", max_len=4096)
    if not secret_file.startswith("/"):
        spec.fail("secret_file", "must be an absolute path")
    admitted = spec.texts("admitted", max_items=MAX_KEYS, max_len=KEY_LEN)
    for key in admitted:
        _check_key(spec, "admitted", key)
    ivl = spec.number("heartbeat_ivl_s", 0.01, 3600.0, 1.0)
    timeout = spec.number("heartbeat_timeout_s", 0.01, 3600.0, 3.0)
    return TcpSecurity(
        _check_key(spec, "public_key", spec.text("public_key", max_len=KEY_LEN)),
        secret_file,
        admitted,
        ivl,
        timeout,
        spec.number("link_grace_s", 0.0, 1e6, 0.0),
    )


def _check_key(spec: Fields, key: str, value: str) -> str:
    if len(value) != KEY_LEN or not Z85.issuperset(value):
        spec.fail(key, f"must be a CURVE public key: {KEY_LEN} Z85 characters")
    return value


def _check_tcp(
    top: Fields, tcp: TcpSecurity | None, inputs: Mapping[str, DataInput | TimerInput],
    outputs: Mapping[str, tuple[Edge, ...]],
) -> None:  # fmt: skip
    """Every tcp:// endpoint is secured: the node has keys, each edge its receiver's key."""
    for spec in inputs.values():
        if isinstance(spec, DataInput) and is_tcp(spec.endpoint):
            if tcp is None:
                top.fail("tcp", f"is required: input {spec.id!r} is bound on tcp://")
            if not tcp.admitted:
                top.fail("tcp.admitted", f"is empty: input {spec.id!r} would admit nobody")
    for output_id, edges in outputs.items():
        for item in edges:
            if is_tcp(item.endpoint) and tcp is None:
                top.fail("tcp", f"is required: output {output_id!r} sends over tcp://")


def is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def _ids(top: Fields, key: str) -> list[str]:
    section = top.mapping(key, max_items=MAX_ITEMS)
    for name in section:
        if not name or len(name) > MAX_ID:
            top.fail(key, f"has an id that is empty or longer than {MAX_ID}")
    return list(section)


def data_input(spec: Fields, input_id: str) -> DataInput:
    """A data input from its keys (the config's `inputs`, and `add_input`)."""
    return DataInput(
        input_id,
        spec.text("endpoint", max_len=MAX_ENDPOINT),
        spec.integer("queue_size", 1, MAX_QUEUE, 10),
        spec.choice("policy", POLICIES, "drop_oldest"),
        spec.texts("sources", max_items=MAX_ITEMS, max_len=2 * MAX_ID + 1),
        spec.number("timeout_s", 0, MAX_INPUT_TIMEOUT_S, 0.0),
    )


def edge(spec: Fields) -> Edge:
    """An output edge from its keys (the config's `outputs`, and `wire`)."""
    endpoint = spec.text("endpoint", max_len=MAX_ENDPOINT)
    server_key = spec.opt_text("server_key", max_len=KEY_LEN)
    if server_key is not None:
        _check_key(spec, "server_key", server_key)
    elif is_tcp(endpoint):
        spec.fail("server_key", "is required: the receiver is on tcp:// (CURVE)")
    return Edge(
        endpoint,
        spec.text("node", max_len=MAX_ID),
        spec.text("input", max_len=MAX_ID),
        spec.choice("policy", POLICIES, "drop_oldest"),
        spec.integer("queue_size", 1, MAX_QUEUE, 10),
        server_key,
    )


def edge_json(item: Edge) -> dict[str, Any]:
    out = {"endpoint": item.endpoint, "node": item.node, "input": item.input,
           "policy": item.policy, "queue_size": item.queue_size}  # fmt: skip
    if item.server_key is not None:
        out["server_key"] = item.server_key
    return out


def data_input_json(spec: DataInput) -> dict[str, Any]:
    """A data input's keys (what `data_input` reads back); `timeout_s` only when set."""
    out = {"endpoint": spec.endpoint, "queue_size": spec.queue_size, "policy": spec.policy,
           "sources": list(spec.sources)}  # fmt: skip
    if spec.timeout_s:
        out["timeout_s"] = spec.timeout_s
    return out


def tcp_json(tcp: TcpSecurity) -> dict[str, Any]:
    return {"public_key": tcp.public_key, "secret_file": tcp.secret_file,
            "admitted": list(tcp.admitted), "heartbeat_ivl_s": tcp.heartbeat_ivl_s,
            "heartbeat_timeout_s": tcp.heartbeat_timeout_s,
            "link_grace_s": tcp.link_grace_s}  # fmt: skip


def to_json(cfg: NodeConfig) -> dict[str, Any]:
    """The JSON object of a configuration (what `from_json` reads back)."""
    inputs: dict[str, Any] = {}
    for input_id, spec in cfg.inputs.items():
        if isinstance(spec, TimerInput):
            inputs[input_id] = {"timer_ns": spec.period_ns}
        else:
            inputs[input_id] = data_input_json(spec)
    return {
        "run": cfg.run,
        "run_name": cfg.run_name,
        "node": cfg.node,
        "generation": cfg.generation,
        "restarts": cfg.restarts,
        "daemon": cfg.daemon,
        "descriptor": cfg.descriptor,
        "config": dict(cfg.config),
        "inputs": inputs,
        "outputs": {oid: [edge_json(e) for e in edges] for oid, edges in cfg.outputs.items()},
        "shm_threshold": cfg.shm_threshold,
        "daemon_grace_s": cfg.daemon_grace_s,
        "start_timeout_s": cfg.start_timeout_s,
        "send_timeout_s": cfg.send_timeout_s,
        "restartable": cfg.restartable,
        **({"tcp": tcp_json(cfg.tcp)} if cfg.tcp is not None else {}),
    }


def dumps(cfg: NodeConfig) -> str:
    """`FLOW_NODE_CONFIG`'s text."""
    return json.dumps(to_json(cfg), separators=(",", ":"))
