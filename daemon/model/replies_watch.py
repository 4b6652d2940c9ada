"""Reply bodies of the requests that watch a live run: topics and recordings."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Json


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
