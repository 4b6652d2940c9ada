"""Live wiring of a running node (docs/protocol.md): applying `wire`/`unwire`; the `stats` report.

The receiver thread reads the daemon's messages (decoded by channel.py). `add_input` it
applies itself (it may own the input sockets). `wire` and `unwire` change the node's
output edges, which only the node's own thread touches: they go through a deque that
`send_output` tests once per send (one attribute, no lock) and are applied there. The
receiver thread also sends the `stats` report every second, which doubles as the dynamic
node's heartbeat; it reads the send-side counters racily (plain ints), so the send path
never takes a lock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import zmq

from node_sdk.channel import Param, ReceiverDown, Rewire, Stats, Wire
from node_sdk.config import DataInput, Edge

log = logging.getLogger(__name__)

REPORT_EVERY_S: Final = 1.0


class _SendEdge(Protocol):
    link: Any  # tcp.Reconnects of a tcp:// backpressure edge, or None
    gone: bool  # given up: its receiver ended for good

    @property
    def node(self) -> str: ...

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


def apply_rewires(
    pending: deque[Rewire | ReceiverDown],
    outputs: Mapping[str, _SendOutput],
    connect: Callable[[Edge], _SendEdge],
    forget: Callable[[str], None],
) -> None:
    """Apply every pending change to the output edges (the node's own thread only).

    An output's edge list is replaced, never changed in place, so a send looping over the
    old list is not disturbed. The output's counters are its own, not its edges', so an
    edge removed takes nothing of them away. A receiver gone for good (`receiver_down` with
    `restarting: false`) loses its edges, as an `unwire` would, and `forget` gets back the
    shared memory only it held.
    """
    while pending:
        change = pending.popleft()
        if isinstance(change, ReceiverDown):
            for its in outputs.values():
                _drop(its, node=change.node)
            forget(change.node)
            continue
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
        _drop(output, endpoint=change.endpoint)


def _drop(
    output: _SendOutput,
    *,
    node: str | None = None,
    endpoint: str | None = None,
) -> None:
    """Close the edges of `output` to `node` (or the one to `endpoint`), with what zmq
    still queues on them."""
    edges: list[_SendEdge] = output.edges
    dropped = [e for e in edges if e.node == node or e.endpoint == endpoint]
    if not dropped:
        return
    output.edges = [e for e in edges if e not in dropped]
    for gone in dropped:
        gone.gone = True  # a send waiting on it, or looping over the old list, skips it
        gone.sock.close(linger=0)  # no end-of-stream: the daemon closes that input
        if gone.link is not None:
            gone.link.close()


def _verb(change: Rewire) -> str:
    return "wire" if isinstance(change, Wire) else "unwire"


def stats_message(
    statistics: _Statistics,
    traffic: Mapping[str, Mapping[str, int]] | None = None,
    bytes_sent: Mapping[str, int] | None = None,
) -> Stats:
    """The `stats` report of the node channel from a `Node.statistics()` snapshot, with
    each input's bytes and latency (`latency.Traffic.report`) added to its counters, and
    each output's payload bytes (`Sender.bytes_sent()`, read racily like its counts)."""
    extra, sent = traffic or {}, bytes_sent or {}
    return Stats(
        {k: {**asdict(v), **extra.get(k, {})} for k, v in statistics.inputs.items()},
        {k: {**asdict(v), "bytes": sent.get(k, 0)} for k, v in statistics.outputs.items()},
    )


@dataclass(slots=True)
class ReceiverHooks:
    """What the receiver thread needs from its node for live wiring and the report."""

    report: Callable[[], Stats]  # the `stats` message, built in the receiver thread
    # handed to the node's thread, applied before its next send (and by a send waiting for
    # a credit): `wire`, `unwire`, and `receiver_down` of a receiver gone for good
    rewires: deque[Rewire | ReceiverDown]
    bind_input: Callable[[DataInput], zmq.Socket[Any]]  # a new input's socket, bound
    param: Callable[[Param], None] | None = None  # a `param` message (node_sdk/params.py)
    # receiver node -> restarting: the daemon's `receiver_down` word, read at the node's end
    receivers: dict[str, bool] | None = None  # (node_sdk/flush.py; `Sender.receivers`)
    every_s: float = REPORT_EVERY_S
