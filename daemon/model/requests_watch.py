"""Control requests that watch a live run: topics (list, info, subscribe, publish), recordings."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Empty
from daemon.model.replies_watch import (
    LeaseReply,
    PublishTarget,
    RecordReply,
    TopicInfoReply,
    TopicListReply,
)
from daemon.model.requests_base import Request


@attrs.frozen
class TopicList(Request[TopicListReply]):
    TYPE = "topic_list"
    REPLY = TopicListReply
    DOC = "every output of a live run, with its receivers and rate"
    run: str


@attrs.frozen
class TopicSubscribe(Request[LeaseReply]):
    TYPE = "topic_subscribe"
    REPLY = LeaseReply
    DOC = "wire an observer's socket (inside the daemon's socket folder) to node/output"
    run: str
    topic: str
    endpoint: str


@attrs.frozen
class TopicRenew(Request[Empty]):
    TYPE = "topic_renew"
    DOC = "keep an observer's lease (it expires after lease_s without a renewal)"
    lease: str


@attrs.frozen
class TopicUnsubscribe(Request[Empty]):
    TYPE = "topic_unsubscribe"
    DOC = "drop an observer's lease and unwire it"
    lease: str


@attrs.frozen
class TopicInfo(Request[TopicInfoReply]):
    TYPE = "topic_info"
    REPLY = TopicInfoReply
    DOC = "one output of a live run: its node, counts, rate, receivers and their queues"
    run: str
    topic: str


@attrs.frozen
class TopicPublish(Request[PublishTarget]):
    TYPE = "topic_publish"
    REPLY = PublishTarget
    DOC = "where `flow topic pub` sends messages into node/input of a live run"
    run: str
    target: str


@attrs.frozen
class RecordStart(Request[RecordReply]):
    TYPE = "record_start"
    REPLY = RecordReply
    DOC = "record outputs of a live run into a new MCAP file (path absolute; topics: all)"
    run: str
    path: str
    topics: list[str] = attrs.field(factory=list)


@attrs.frozen
class RecordRenew(Request[RecordReply]):
    TYPE = "record_renew"
    REPLY = RecordReply
    DOC = "keep a recording going (it stops after lease_s without a renewal); its state"
    recording: str


@attrs.frozen
class RecordStop(Request[RecordReply]):
    TYPE = "record_stop"
    REPLY = RecordReply
    DOC = "stop a recording: the file is finished; its summary"
    recording: str
