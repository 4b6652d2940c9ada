"""The control protocol's reply bodies, one frozen class per shape (docs/protocol.md).

RunInfo, NodeInfo and NodeDetail stay JSON objects (`Json`): the store builds them, the
CLI renders them key by key, and `flow list --json` prints them as they are.
"""

from __future__ import annotations

from typing import Any, NewType

import attrs

Json = dict[str, Any]
ParamText = NewType("ParamText", str)
"""A parameter's JSON text: at most requests.MAX_PARAM_CHARS (both ways)."""


@attrs.frozen
class Empty:
    """A reply with nothing to say but `ok`."""


@attrs.frozen
class PingReply:
    pid: int
    version: str
    home: str
    stopping: bool = False  # shutting down (`flow down`, SIGTERM): it starts nothing new


@attrs.frozen
class StatusReply:
    pid: int
    version: str
    home: str
    uptime_s: float
    runs_active: int
    degraded: list[str]
    metrics: str | None = None  # the URL of the Prometheus endpoint (`flow up --metrics`)


@attrs.frozen
class RunReply:
    """One run's RunInfo (`start`, `stop`, `restart`)."""

    run: Json


@attrs.frozen
class RunsReply:
    """RunInfo of several runs (`list`, `stop_all`); `omitted`: the older runs a `list`
    left out to stay within LIST_REPLY_BYTES."""

    runs: list[Json]
    omitted: int = 0


@attrs.frozen
class LogsReply:
    run: Json
    files: dict[str, str]


@attrs.frozen
class WaitReply:
    run: Json
    done: bool


@attrs.frozen
class NodeListReply:
    run: str
    nodes: list[Json]


@attrs.frozen
class NodeReply:
    """One node's NodeDetail (`node_info`, `node_stop`, `node_restart`)."""

    node: Json


@attrs.frozen
class ParamsReply:
    """A node's parameters: key -> JSON text (`param_list`, `param_set`)."""

    run: str
    node: str
    params: dict[str, ParamText]


@attrs.frozen
class NodeIdReply:
    """The id of the node a graph edit added or removed."""

    node: str


@attrs.frozen
class EdgeReply:
    """The mapping a graph edit connected or disconnected."""

    source: str
    target: str


@attrs.frozen
class Topic:
    topic: str
    receivers: list[str]
    rate: float | None


@attrs.frozen
class TopicListReply:
    run: str
    topics: list[Topic]


@attrs.frozen
class TopicReceiver:
    """One input an output feeds, with the queue it has there."""

    input: str
    policy: str
    queue_size: int


@attrs.frozen
class TopicInfoReply:
    run: str
    topic: str
    node_status: str
    sent: int | None  # the sender's last report; None before its first
    dropped: int | None
    rate: float | None
    receivers: list[TopicReceiver]
    observers: int


@attrs.frozen
class PublishTarget:
    """The input endpoint `flow topic pub` sends to, and how (docs/cli.md)."""

    endpoint: str
    policy: str
    queue_size: int
    source: str  # the name its messages carry: a source of its own, closed by its EOS


@attrs.frozen
class LeaseReply:
    lease: str
    lease_s: float
    run: str = ""  # the id of the run observed (a name may later be another run's)


@attrs.frozen
class RecordReply:
    recording: str
    topics: list[str]
    lease_s: float
    summary: Json | None = None  # once it has ended: recorded, missed, error, per topic


@attrs.frozen
class TopReply:
    runs: list[Json]
    time: float


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
