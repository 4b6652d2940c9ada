"""`flow doctor --cluster`'s pure parts: which machine-to-machine links to probe, the probe's
sizes and bounds, and the receiver's acknowledgement (docs/cluster.md, "Probing the links").

A link is one direction between two machines: the sender connects, the receiver binds, as a
node's edge and input would. A dataflow's plan probes each pair of machines one of its edges
crosses, in both directions, and lists its same-machine edges as local (`ipc://`, nothing to
probe across); without a dataflow every pair of machines is probed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from daemon.model.descriptor_model import Dataflow, OutputRef

SMALL_BYTES: Final = 8
LARGE_BYTES: Final = 8 << 20  # the size dora #1778 lost without a word
MAX_LARGE_BYTES: Final = 64 << 20  # what a node's tcp:// input takes inline
DEFAULT_TIMEOUT_S: Final = 10.0  # for each message's acknowledgement
MAX_TIMEOUT_S: Final = 300.0
# a sender's three messages (two small, one large), each within the timeout, plus the
# connection: what the coordinator waits for a member's report, and a receiver stays bound
ANSWERS_PER_PROBE: Final = 3
MARGIN_S: Final = 3.0


@attrs.frozen
class PlannedLink:
    """One direction between two machines; `edges` are the dataflow's edges that take it
    (`source/output -> node/input`), empty for the way back of a one-way pair."""

    source: str  # the sending machine
    target: str  # the receiving machine
    edges: tuple[str, ...] = ()

    @property
    def local(self) -> bool:
        return self.source == self.target


def dataflow_links(dataflow: Dataflow, machine_of: Mapping[str, str]) -> list[PlannedLink]:
    """The links a placed dataflow's edges use: each crossing pair in both directions, and
    each machine's own edges as one local link, in a stable order."""
    edges: dict[tuple[str, str], list[str]] = {}
    for node in dataflow.nodes:
        for spec in node.inputs:
            if isinstance(spec.source, OutputRef):
                pair = (machine_of[spec.source.node], machine_of[node.id])
                text = f"{spec.source.node}/{spec.source.output} -> {node.id}/{spec.id}"
                edges.setdefault(pair, []).append(text)
    pairs = set(edges)
    pairs |= {(target, source) for source, target in edges if source != target}
    return [PlannedLink(s, t, tuple(edges.get((s, t), ()))) for s, t in sorted(pairs)]


def every_pair(machines: Iterable[str]) -> list[PlannedLink]:
    """Every ordered pair of distinct machines."""
    names = sorted(set(machines))
    return [PlannedLink(s, t) for s in names for t in names if s != t]


def payload(size: int) -> bytes:
    """A probe message of `size` bytes that is not all zeros (a link that drops or mangles
    part of it shows in the acknowledgement's digest)."""
    pattern = bytes(range(251))  # a prime length: no alignment hides a shifted block
    return (pattern * (size // len(pattern) + 1))[:size]


def acknowledgement(data: bytes | memoryview) -> bytes:
    """What the receiver answers to each message: its length and a digest of it."""
    return f"{len(data)} {hashlib.blake2b(data, digest_size=8).hexdigest()}".encode()


def answers_within(timeout_s: float) -> float:
    """How long a whole probe of one link may take (its three answers, then a margin)."""
    return ANSWERS_PER_PROBE * timeout_s + MARGIN_S
