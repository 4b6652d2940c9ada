"""Reply bodies about the cluster: join tokens, its machines, link probes."""

from __future__ import annotations

import attrs


@attrs.frozen
class TokenReply:
    """A join token (`cluster_token`): its text, its id (to revoke it) and its expiry."""

    token: str
    id: str
    expires: float


@attrs.frozen
class MachineRow:
    """One machine of a cluster as `flow cluster status` shows it."""

    name: str
    role: str  # coordinator | member
    address: str | None
    state: str  # connected | lost | left (the coordinator itself: connected)
    heartbeat_age_s: float | None  # since the last heartbeat; None before the first
    fingerprint: str
    nodes: int | None  # live nodes of runs coordinated here; None where not known (a member)


@attrs.frozen
class ClusterStatusReply:
    """The cluster as this daemon sees it: a coordinator lists every machine; a member
    names its coordinator and the link's state."""

    role: str  # coordinator | member | none
    machine: str | None
    coordinator: str | None
    coordinator_address: str | None
    link: str | None  # a member's link: connected | lost | removed
    link_age_s: float | None  # a member: since the coordinator's last heartbeat
    machines: list[MachineRow]


@attrs.frozen
class LinkRow:
    """One probed direction between two machines (`flow doctor --cluster`): the sender
    `source`, the receiver `target`; a local row (same machine) is not probed. The times
    are each message's round trip (sent until acknowledged); `error` says why it failed."""

    source: str
    target: str
    edges: list[str]  # the dataflow's edges that take this link (none without a dataflow)
    small_s: float | None
    large_s: float | None
    error: str | None

    @property
    def local(self) -> bool:
        return self.source == self.target


@attrs.frozen
class LinkProbeReply:
    """Every link probed, with the two message sizes used."""

    small_bytes: int
    large_bytes: int
    links: list[LinkRow]
