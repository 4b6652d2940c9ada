"""Live wiring of a running node (docs/protocol.md): `wire`, `unwire`, `add_input`, `stats`.

The receiver thread reads the daemon's messages. `add_input` it applies itself (it owns the
input sockets). `wire` and `unwire` change the node's output edges, which only the node's
own thread touches: they go through a deque that `send_output` tests once per send (one
attribute, no lock) and are applied there, before the send. The receiver thread also
sends the `stats` report every second, which doubles as the dynamic node's heartbeat; it
reads the send-side counters racily (plain ints), so the send path never takes a lock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import zmq

from node_sdk.config import POLICIES, DataInput, Edge

log = logging.getLogger(__name__)

REPORT_EVERY_S: Final = 1.0
LIVE: Final = frozenset({"wire", "unwire", "add_input"})  # the live wiring messages


@dataclass(frozen=True, slots=True)
class Wire:
    """Add an edge to `output` (a new receiver of it)."""

    output: str
    edge: Edge


@dataclass(frozen=True, slots=True)
class Unwire:
    """Remove the edge of `output` that sends to `endpoint`."""

    output: str
    endpoint: str


Rewire = Wire | Unwire


class _SendEdge(Protocol):
    sent: int

    @property
    def sock(self) -> zmq.Socket[Any]: ...

    @property
    def endpoint(self) -> str: ...


class _SendOutput(Protocol):
    edges: list[Any]


class _Statistics(Protocol):
    @property
    def inputs(self) -> Mapping[str, Any]: ...

    @property
    def outputs(self) -> Mapping[str, Any]: ...


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{message.get('t')}: {key!r} must be a non-empty string")
    return value


def _size(message: Mapping[str, Any]) -> int:
    size = message.get("queue_size", 10)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{message.get('t')}: 'queue_size' must be an integer >= 1")
    return size


def _policy(message: Mapping[str, Any]) -> str:
    policy = message.get("policy", "drop_oldest")
    if policy not in POLICIES:
        raise ValueError(f"{message.get('t')}: policy {policy!r} is not one of {POLICIES}")
    return str(policy)


def parse_rewire(message: Mapping[str, Any]) -> Rewire:
    """A `wire` or `unwire` message as a spec; ValueError names what is wrong."""
    output = _text(message, "output")
    endpoint = _text(message, "endpoint")
    if message["t"] == "unwire":
        return Unwire(output, endpoint)
    edge = Edge(
        endpoint, _text(message, "node"), _text(message, "input"), _policy(message), _size(message)
    )
    return Wire(output, edge)


def parse_add_input(message: Mapping[str, Any]) -> DataInput:
    """An `add_input` message as an input spec; ValueError names what is wrong."""
    sources = message.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise ValueError("add_input: 'sources' must be a list of 'node/output' strings")
    return DataInput(
        _text(message, "input"),
        _text(message, "endpoint"),
        _size(message),
        _policy(message),
        tuple(sources),
    )


def apply_rewires(
    pending: deque[Rewire],
    outputs: Mapping[str, _SendOutput],
    connect: Callable[[Edge], _SendEdge],
    retired: MutableMapping[str, int],
) -> None:
    """Apply every pending change to the output edges (the node's own thread only).

    An output's edge list is replaced, never changed in place, so the receiver thread can
    sum its counters while this runs.
    """
    while pending:
        change = pending.popleft()
        output = outputs.get(change.output)
        if output is None:
            log.warning("%s for unknown output %r ignored", _verb(change), change.output)
            continue
        edges = output.edges
        if isinstance(change, Wire):
            if any(e.endpoint == change.edge.endpoint for e in edges):
                continue  # wired already (the daemon repeats live edges after a restart)
            output.edges = [*edges, connect(change.edge)]
            continue
        kept = [e for e in edges if e.endpoint != change.endpoint]
        if len(kept) == len(edges):
            continue
        output.edges = kept
        for gone in edges:
            if gone.endpoint == change.endpoint:
                retired[change.output] = retired.get(change.output, 0) + gone.sent
                gone.sock.close(linger=0)  # no end-of-stream: the daemon closes that input


def _verb(change: Rewire) -> str:
    return "wire" if isinstance(change, Wire) else "unwire"


def stats_message(statistics: _Statistics) -> dict[str, Any]:
    """The `stats` report of the node channel from a `Node.statistics()` snapshot."""
    return {
        "t": "stats",
        "inputs": {k: asdict(v) for k, v in statistics.inputs.items()},
        "outputs": {k: asdict(v) for k, v in statistics.outputs.items()},
    }


@dataclass(slots=True)
class ReceiverHooks:
    """What the receiver thread needs from its node for live wiring and the report."""

    report: Callable[[], dict[str, Any]]  # the `stats` message, built in the receiver thread
    rewires: deque[Rewire]  # handed to the node's thread, applied before its next send
    bind_input: Callable[[DataInput], zmq.Socket[Any]]  # a new input's socket, bound
    every_s: float = REPORT_EVERY_S
