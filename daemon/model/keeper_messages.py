"""The keeper channel (daemon <-> run keeper): its messages, and one total decoder for them.

Each message is one JSON object whose `t` names its kind (docs/protocol.md). Both ends
use `encode` and `decode`; `decode` takes any bytes and gives a message or raises
`KeeperMessageError`, never anything else: size, nesting depth, integer range and string
length are bounded, floats, NaN and unknown or missing keys are refused, and no value is
coerced (`"5"` is not an int, `1` is not a bool).
"""

from __future__ import annotations

import json
import signal
from typing import Any, Final, get_args, get_origin

import attrs
import cattrs

from daemon.model.stderr_tail import bound_tail
from node_sdk.strictjson import depth, lone_surrogate

MAX_MESSAGE_BYTES: Final = 4 << 20  # a spawn carries the node's whole environment
MAX_DEPTH: Final = 8  # the deepest message (state -> nodes -> node -> tail) is 4
MAX_STRING: Final = 1 << 20
MAX_INT: Final = 1 << 62
MAX_COUNTED: Final = 1024  # outputs in one `stdout_stats` (a dataflow holds at most 1024 nodes)
# A keeper whose process lives but does not answer is stalled (a machine under heavy load,
# a log filesystem that blocks its writes, SIGSTOP): its nodes run on, talking to each other
# directly, so its run waits this long for it before it takes the keeper as hung and fails
# (daemon/run/keeper_link.py); a stop may wait as long (`flow stop`'s budget)
KEEPER_HUNG_S: Final = 30.0


class KeeperMessageError(ValueError):
    """Bytes on the keeper channel that are not one of its messages."""


# Only signals Python names: the keeper and the slot turn numbers into `signal.Signals`.
_SIGNALS = frozenset(s.value for s in signal.Signals)


def _signal_number(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value not in _SIGNALS:
        raise ValueError(f"{attribute.name} {value} is not a signal number")


def _exit_code(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    """An exit status (0..255) or minus the signal that ended the process."""
    if value is not None and not (0 <= value <= 255 or -value in _SIGNALS):
        raise ValueError(f"{attribute.name} {value} is neither an exit status nor -signal")


def _tail(lines: tuple[str, ...]) -> tuple[str, ...]:
    """A node's stderr tail within its bounds, however long what a keeper sent."""
    return tuple(bound_tail(lines))


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} {value} is negative")


# ------------------------------------------------------------------ daemon -> keeper


@attrs.frozen
class Attach:
    """Ask for the state of every node (at start, and when a daemon comes back)."""


@attrs.frozen
class Ping:
    """The daemon's heartbeat; the keeper answers `Pong`."""


@attrs.frozen
class Quit:
    """Stop what is left and exit once every node is reported."""


@attrs.frozen
class Signal:
    node: str
    sig: int = attrs.field(validator=_signal_number)


@attrs.frozen
class Edge:
    """One receiving input of a `send_stdout_as` output."""

    endpoint: str
    node: str
    input: str
    policy: str
    queue_size: int
    server_key: str | None = None  # a tcp:// receiver's machine key (docs/cluster-data.md)


@attrs.frozen
class StdoutKeys:
    """What a keeper's tcp:// `send_stdout_as` edges connect with: its machine's CURVE key
    pair (the secret in its private file) and the cluster's heartbeat, in milliseconds."""

    public_key: str
    secret_file: str
    heartbeat_ms: int
    timeout_ms: int


@attrs.frozen
class StdoutAs:
    source: str  # <node>/<output>
    edges: tuple[Edge, ...]
    restartable: bool = False  # the node may come back: end-of-stream ends a generation
    # the lines wait in the keeper (bounded) until `Release`: spawned before the start
    # barrier, the node's receivers may not all be connected yet
    held: bool = False
    # dora's `send_logs_as`: the node's log records (its Python logging), as JSON strings,
    # instead of its stdout lines
    records: bool = False
    min_level: int = 0  # records below this level are not sent (a dora/logs/LEVEL input)
    tcp: StdoutKeys | None = None  # set when an edge goes to another machine


@attrs.frozen
class Spawn:
    node: str
    generation: int
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    log: str
    stdout_as: StdoutAs | None = None
    log_max_bytes: int | None = None  # the node's own rotation size (dora's max_log_size)
    cpu_affinity: tuple[int, ...] | None = None  # the CPUs it runs on (dora's cpu_affinity)
    fork: bool = True  # a Python node may come from the run's fork server (`spawn: exec`: no)


@attrs.frozen
class WireStdout:
    """One more receiver of a `send_stdout_as` output while its node runs: an observer, a
    recorder, a dynamic node (the daemon's live edges; a later spawn carries them)."""

    node: str
    edge: Edge
    tcp: StdoutKeys | None = None  # set when the edge goes to another machine


@attrs.frozen
class UnwireStdout:
    """That receiver is gone: its socket is closed."""

    node: str
    endpoint: str


@attrs.frozen
class Release:
    """The run is past its start barrier: send the node's held `send_stdout_as` lines."""

    node: str
    generation: int


# ------------------------------------------------------------------ keeper -> daemon


@attrs.frozen
class Pong:
    """The keeper is alive (an answer to `Ping`)."""


@attrs.frozen
class NodeState:
    generation: int
    pid: int
    code: int | None = attrs.field(validator=_exit_code)
    alive: bool
    tail: tuple[str, ...] = attrs.field(converter=_tail)


@attrs.frozen
class State:
    nodes: dict[str, NodeState]
    degraded: str | None = None
    pid: int = 0  # the keeper's process: the daemon watches an adopted keeper's by it


@attrs.frozen
class Spawned:
    node: str
    generation: int
    pid: int


@attrs.frozen
class SpawnFailed:
    node: str
    generation: int
    error: str
    # out of a resource that comes back (EMFILE, ENFILE, EAGAIN, ENOMEM): worth retrying
    transient: bool = False


@attrs.frozen
class Exited:
    node: str
    generation: int
    code: int | None = attrs.field(validator=_exit_code)
    tail: tuple[str, ...] = attrs.field(default=(), converter=_tail)


@attrs.frozen
class Degraded:
    what: str | None
    dropped: int = 0


@attrs.frozen
class OutputCounts:
    """What the keeper sent on one node's `send_stdout_as` output in one generation, counted
    as an SDK node counts an output in its `stats`: messages `sent` (one line to N receivers
    is N), `dropped` (a full queue, no credit, a full held queue), payload `bytes` (each
    line once)."""

    node: str
    generation: int = attrs.field(validator=_count)
    output: str
    sent: int = attrs.field(validator=_count)
    dropped: int = attrs.field(validator=_count)
    bytes: int = attrs.field(validator=_count)


def _counted(instance: object, attribute: attrs.Attribute[tuple[OutputCounts, ...]],
             value: tuple[OutputCounts, ...]) -> None:  # fmt: skip
    if len(value) > MAX_COUNTED:
        raise ValueError(f"{attribute.name}: {len(value)} entries, more than {MAX_COUNTED}")


@attrs.frozen
class StdoutStats:
    """The counts of the `send_stdout_as` outputs that changed (about once a second while
    they change, and once more after, so that a rate falls back to 0)."""

    outputs: tuple[OutputCounts, ...] = attrs.field(validator=_counted)


ToKeeper = Attach | Ping | Quit | Signal | Spawn | Release | WireStdout | UnwireStdout
FromKeeper = Pong | State | Spawned | SpawnFailed | Exited | Degraded | StdoutStats
KeeperMessage = ToKeeper | FromKeeper

TAGS: Final[dict[type[Any], str]] = {
    Attach: "attach", Ping: "ping", Quit: "quit", Signal: "signal", Spawn: "spawn",
    Release: "release", WireStdout: "wire_stdout", UnwireStdout: "unwire_stdout",
    Pong: "pong", State: "state", Spawned: "spawned", SpawnFailed: "spawn_failed",
    Exited: "exited", Degraded: "degraded", StdoutStats: "stdout_stats",
}  # fmt: skip
_KINDS: Final = {tag: kind for kind, tag in TAGS.items()}


def _strict_int(value: object, _: type) -> int:
    if type(value) is not int or not -MAX_INT <= value <= MAX_INT:
        raise ValueError(f"not an integer in range: {value!r:.40}")
    return value


def _strict_str(value: object, _: type) -> str:
    if type(value) is not str or len(value) > MAX_STRING:
        raise ValueError(f"not a string of at most {MAX_STRING} characters")
    return value


def _strict_bool(value: object, _: type) -> bool:
    if type(value) is not bool:
        raise ValueError(f"not a boolean: {value!r:.40}")
    return value


def _is_tuple(kind: Any) -> bool:
    return get_origin(kind) is tuple


def _is_dict(kind: Any) -> bool:
    return get_origin(kind) is dict


def _strict_tuple(value: object, kind: Any) -> tuple[Any, ...]:
    if type(value) is not list:  # never a string's characters or a dict's keys
        raise ValueError("not a list")
    item = get_args(kind)[0]
    return tuple(converter.structure(v, item) for v in value)


def _strict_dict(value: object, kind: Any) -> dict[Any, Any]:
    if type(value) is not dict:
        raise ValueError("not an object")
    key, item = get_args(kind)
    return {converter.structure(k, key): converter.structure(v, item) for k, v in value.items()}


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook_func(_is_tuple, _strict_tuple)
converter.register_structure_hook_func(_is_dict, _strict_dict)


def encode(message: KeeperMessage) -> bytes:
    body = converter.unstructure(message)
    return json.dumps({"t": TAGS[type(message)], **body}, separators=(",", ":")).encode()


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def _refuse_float(text: str) -> object:
    raise ValueError(f"a float ({text[:20]}) where none belongs")


def decode(data: bytes) -> KeeperMessage:
    """One message from any bytes, or `KeeperMessageError` (and nothing else)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise KeeperMessageError(f"message too large ({len(data)} bytes)")
    if depth(data) > MAX_DEPTH:  # before parsing: the parser recurses per level
        raise KeeperMessageError(f"nested deeper than {MAX_DEPTH}")
    try:
        raw = json.loads(data, parse_constant=_refuse_constant, parse_float=_refuse_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise KeeperMessageError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise KeeperMessageError("not a JSON object")
    if lone_surrogate(data, raw):
        raise KeeperMessageError("a string that is not valid Unicode (a lone surrogate)")
    kind = _KINDS.get(raw.pop("t", None)) if isinstance(raw.get("t"), str) else None
    if kind is None:
        raise KeeperMessageError("no known message kind in `t`")
    try:
        message: KeeperMessage = converter.structure(raw, kind)
    except Exception as exc:  # cattrs' own, or a hook's: all mean "not this message"
        raise KeeperMessageError(f"bad {TAGS[kind]}: {_first_cause(exc)}") from None
    return message


def _first_cause(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc)[:200]
