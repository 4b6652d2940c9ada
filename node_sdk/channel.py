"""The node channel's messages (docs/protocol.md): frozen classes, `encode`, one total `decode`.

Both ends import this module: a node sends `Hello`, `Bye`, `Stats`, `ParamAck` (and, on a
short-lived socket, `Attach`); the daemon sends `Start`, `Stop`, `UpstreamDone`, the live
wiring (`Wire`, `Unwire`, `AddInput`), parameters (`Param`) and the attach answer
(`Attached`, `Refused`). `decode`
turns any bytes into one of them or raises `NodeError`, and nothing else: size, depth,
integer ranges and string lengths are bounded before a message object exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar, dataclass_transform

from node_sdk import config as _config
from node_sdk.config import MAX_ENDPOINT, MAX_ID, MAX_ITEMS, DataInput, Edge, NodeConfig
from node_sdk.errors import NodeError
from node_sdk.strictjson import MAX_INT, Fields, loads

MAX_FRAME: Final = 1 << 20  # an `attached` carries a whole node configuration
MAX_DEPTH: Final = _config.MAX_CONFIG_DEPTH + 2
MAX_PID: Final = 2**22  # Linux's pid_max ceiling
MAX_ERROR: Final = 4096
MAX_PARAM_KEY: Final = 128
MAX_PARAM_VALUE: Final = 64 * 1024  # characters of JSON text (the daemon bounds its bytes)
MAX_TIMEOUT_MS: Final = 3_600_000
_WHAT: Final = "node channel message"
_T = TypeVar("_T")


class _Frozen:
    """What every message class shares: positional or keyword construction, no changes
    after it, equality and hash by type and values, a readable repr."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if len(args) > len(names) or set(kwargs) - set(names[len(args) :]):
            raise TypeError(f"{type(self).__name__} takes {', '.join(names) or 'no fields'}")
        for name, value in zip(names, args, strict=False):
            object.__setattr__(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                object.__setattr__(self, name, kwargs[name])
            elif name in self._defaults:
                object.__setattr__(self, name, self._defaults[name])
            else:
                raise TypeError(f"{type(self).__name__} takes {', '.join(names)}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Frozen)
            and type(other) is type(self)
            and (other._values() == self._values())
        )

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


@dataclass_transform(frozen_default=True)
def _message(cls: type[_T]) -> type[_T]:
    """A frozen message class from annotated fields, without `dataclasses`' code generation
    (a dozen classes made with it cost a node ~6 ms of import time; these cost ~0.2)."""
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 (no inspect import)
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    namespace = {"__slots__": names, "_fields": names, "_defaults": defaults,
                 "__doc__": cls.__doc__, "__module__": cls.__module__,
                 "__qualname__": cls.__qualname__}  # fmt: skip
    made: type[_T] = type(cls.__name__, (_Frozen,), namespace)
    return made


@_message
class Hello:
    """node -> daemon: this generation of this node is connected."""

    run: str
    node: str
    generation: int
    pid: int


@_message
class Bye:
    """node -> daemon: the node closed on purpose."""


@_message
class Stats:
    """node -> daemon, every second: counters per input and output (the heartbeat too)."""

    inputs: Mapping[str, Mapping[str, int]]
    outputs: Mapping[str, Mapping[str, int]]
    # how long the node's own thread has not been in next() nor sent (dora's health check)
    away_ms: int = 0


@_message
class Attach:
    """process -> daemon: make me the dynamic node `node` (of `dataflow`, if given)."""

    node: str
    dataflow: str | None
    pid: int


@_message
class Start:
    """daemon -> node: every node is connected; go."""


@_message
class Stop:
    """daemon -> node: stop (the node gets STOP(STOP_REQUESTED)).

    `restart`: the daemon starts the node's next generation at once (`flow node restart`),
    so its end-of-stream says the generation ends, not the stream (docs/protocol.md).
    `everyone`: the whole run stops, so no receiver of the node comes back: one that is
    down is not waited for (node_sdk/flush.py).
    """

    restart: bool = False
    everyone: bool = False


@_message
class UpstreamDone:
    """daemon -> node: `source` ("node/output") will send nothing more to `input`.

    With `generation` (> 0) the source ended for good with that generation, which said
    goodbye: the input closes once that generation's end-of-stream is in, so nothing it
    sent is overtaken. 0: close at once (the source died without end-of-stream).
    """

    input: str
    source: str
    generation: int = 0


@_message
class ReceiverDown:
    """daemon -> node: `node`, a receiver of one of its outputs, is down: `restarting`
    (between two generations: a sender that ends waits for it, node_sdk/flush.py) or
    gone for good."""

    node: str
    restarting: bool = False


@_message
class Wire:
    """daemon -> node: add an edge to `output` (a new receiver of it)."""

    output: str
    edge: Edge


@_message
class Unwire:
    """daemon -> node: remove the edge of `output` that sends to `endpoint`."""

    output: str
    endpoint: str


@_message
class AddInput:
    """daemon -> node: bind a new input, or add sources to one that exists."""

    input: DataInput


@_message
class Param:
    """daemon -> node: parameter `key` is now `value` (JSON text; None: deleted).

    `token` 0: a current value, sent before `start` (no event, no answer). Else the node
    answers `param_ack` with the token once its PARAM event was handled, unless it read it
    later than `timeout_ms` after its arrival (the daemon has given up: it is not applied).
    """

    key: str
    value: str | None
    token: int = 0
    timeout_ms: int = 0


@_message
class ParamAck:
    """node -> daemon: parameter change `token` was taken (error None) or refused (why)."""

    token: int
    error: str | None = None


@_message
class Attached:
    """daemon -> attaching process: granted, with the node's configuration."""

    config: NodeConfig


@_message
class Refused:
    """daemon -> attaching process: refused, with the one-line reason."""

    error: str


class BadMessage(NodeError):
    """A message of a known type `kind` whose fields are wrong (still the layer's one
    error: a NodeError), so a caller waiting for that type can tell it from noise."""

    def __init__(self, kind: str, cause: str) -> None:
        self.kind = kind
        super().__init__(cause)


Message = (
    Hello | Bye | Stats | Attach | Start | Stop | UpstreamDone | ReceiverDown | Wire | Unwire
    | AddInput | Attached | Refused | Param | ParamAck
)  # fmt: skip
Rewire = Wire | Unwire
LIVE: Final = (Wire, Unwire, AddInput)  # the live wiring messages


def to_json(message: Message) -> dict[str, Any]:
    """The JSON object of a message (flat, with its type under `t`)."""
    if isinstance(message, Hello):
        return {"t": "hello", "run": message.run, "node": message.node,
                "generation": message.generation, "pid": message.pid}  # fmt: skip
    if isinstance(message, Stats):
        inputs = {k: dict(v) for k, v in message.inputs.items()}
        outputs = {k: dict(v) for k, v in message.outputs.items()}
        away = {"away_ms": message.away_ms} if message.away_ms else {}  # 0: left out
        return {"t": "stats", "inputs": inputs, "outputs": outputs, **away}
    if isinstance(message, Attach):
        return {
            "t": "attach",
            "node": message.node,
            "dataflow": message.dataflow,
            "pid": message.pid,
        }
    if isinstance(message, UpstreamDone):
        done = {"t": "upstream_done", "input": message.input, "source": message.source}
        return {**done, "generation": message.generation} if message.generation else done
    if isinstance(message, ReceiverDown):
        return {"t": "receiver_down", "node": message.node, "restarting": message.restarting}
    if isinstance(message, Stop):  # a flag only when set: a plain stop is `{"t": "stop"}`
        flags = (("restart", message.restart), ("everyone", message.everyone))
        return {"t": "stop", **{name: True for name, on in flags if on}}
    if isinstance(message, Wire):
        return {"t": "wire", "output": message.output, **_config.edge_json(message.edge)}
    if isinstance(message, Unwire):
        return {"t": "unwire", "output": message.output, "endpoint": message.endpoint}
    if isinstance(message, AddInput):
        spec = message.input
        return {"t": "add_input", "input": spec.id, **_config.data_input_json(spec)}
    if isinstance(message, Attached):
        return {"t": "attached", "config": _config.to_json(message.config)}
    if isinstance(message, Refused):
        return {"t": "refused", "error": message.error}
    if isinstance(message, Param):
        return {"t": "param", "key": message.key, "value": message.value,
                "token": message.token, "timeout_ms": message.timeout_ms}  # fmt: skip
    if isinstance(message, ParamAck):
        return {"t": "param_ack", "token": message.token, "error": message.error}
    return {"t": _BARE[type(message)]}


def encode(message: Message) -> bytes:
    """One message -> its JSON frame."""
    return json.dumps(to_json(message), separators=(",", ":"), ensure_ascii=False).encode()


def decode(frame: bytes) -> Message:
    """Any bytes -> a message, or NodeError (the node channel's one decode function)."""
    fields = Fields(loads(frame, _WHAT, max_bytes=MAX_FRAME, max_depth=MAX_DEPTH), _WHAT)
    kind = fields.raw.get("t")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None or not isinstance(kind, str):
        raise NodeError(f"{_WHAT}: unknown type {str(kind)[:40]!r}")
    try:
        return reader(fields)
    except NodeError as exc:
        raise BadMessage(kind, str(exc)) from None


def _counters(fields: Fields, key: str) -> dict[str, dict[str, int]]:
    section = fields.mapping(key, max_items=MAX_ITEMS)
    out: dict[str, dict[str, int]] = {}
    for name in section:
        counters = fields.obj(key).obj(name)
        if len(name) > MAX_ID or len(counters.raw) > 16:
            fields.fail(key, f"entry {name[:40]!r} is malformed")
        out[name] = {c: counters.integer(c, 0, MAX_INT) for c in counters.raw}
    return out


def _add_input(f: Fields) -> AddInput:
    return AddInput(_config.data_input(f, f.text("input", max_len=MAX_ID)))


_BARE: Final[dict[type, str]] = {Bye: "bye", Start: "start"}
_READERS: Final[dict[str, Callable[[Fields], Message]]] = {
    "hello": lambda f: Hello(
        f.text("run", max_len=128),
        f.text("node", max_len=MAX_ID),
        f.integer("generation", 0, _config.MAX_GENERATION),
        f.integer("pid", 1, MAX_PID),
    ),
    "bye": lambda f: Bye(),
    "stats": lambda f: Stats(
        _counters(f, "inputs"), _counters(f, "outputs"), f.integer("away_ms", 0, MAX_INT, 0)
    ),
    "attach": lambda f: Attach(
        f.text("node", max_len=MAX_ID),
        f.opt_text("dataflow", max_len=1024),
        f.integer("pid", 1, MAX_PID),
    ),
    "start": lambda f: Start(),
    "stop": lambda f: Stop(f.flag("restart"), f.flag("everyone")),
    "upstream_done": lambda f: UpstreamDone(
        f.text("input", max_len=MAX_ID),
        f.text("source", max_len=2 * MAX_ID + 1),
        f.integer("generation", 0, _config.MAX_GENERATION, 0),
    ),
    "receiver_down": lambda f: ReceiverDown(
        f.text("node", max_len=MAX_ID), f.flag("restarting")
    ),
    "wire": lambda f: Wire(f.text("output", max_len=MAX_ID), _config.edge(f)),
    "unwire": lambda f: Unwire(
        f.text("output", max_len=MAX_ID), f.text("endpoint", max_len=MAX_ENDPOINT)
    ),
    "add_input": _add_input,
    "attached": lambda f: Attached(_config.from_json(f.raw.get("config"), "config")),
    "refused": lambda f: Refused(f.text("error", max_len=MAX_ERROR)),
    "param": lambda f: Param(
        f.text("key", max_len=MAX_PARAM_KEY),
        f.opt_text("value", max_len=MAX_PARAM_VALUE),
        f.integer("token", 0, MAX_INT),
        f.integer("timeout_ms", 0, MAX_TIMEOUT_MS),
    ),
    "param_ack": lambda f: ParamAck(
        f.integer("token", 1, MAX_INT), f.opt_text("error", max_len=MAX_ERROR)
    ),
}
