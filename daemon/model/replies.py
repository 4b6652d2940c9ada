"""The control protocol's reply bodies, one frozen class per shape (docs/protocol.md).

RunInfo, NodeInfo and NodeDetail stay JSON objects (`Json`): the store builds them, the
CLI renders them key by key, and `flow list --json` prints them as they are. The classes
live in `replies_base` and four modules by what they answer (as the requests do); every
name is also here.
"""

from __future__ import annotations

from daemon.model.replies_base import (
    Empty,
    Json,
    ParamText,
)
from daemon.model.replies_cluster import (
    ClusterStatusReply,
    LinkProbeReply,
    LinkRow,
    MachineRow,
    TokenReply,
)
from daemon.model.replies_nodes import (
    EdgeReply,
    NodeIdReply,
    NodeListReply,
    NodeReply,
    ParamsReply,
)
from daemon.model.replies_runs import (
    LogsReply,
    PingReply,
    RunReply,
    RunsReply,
    StatusReply,
    TopReply,
    WaitReply,
)
from daemon.model.replies_watch import (
    LeaseReply,
    PublishTarget,
    RecordReply,
    Topic,
    TopicInfoReply,
    TopicListReply,
    TopicReceiver,
)

__all__ = [
    "ClusterStatusReply",
    "EdgeReply",
    "Empty",
    "Json",
    "LeaseReply",
    "LinkProbeReply",
    "LinkRow",
    "LogsReply",
    "MachineRow",
    "NodeIdReply",
    "NodeListReply",
    "NodeReply",
    "ParamText",
    "ParamsReply",
    "PingReply",
    "PublishTarget",
    "RecordReply",
    "RunReply",
    "RunsReply",
    "StatusReply",
    "TokenReply",
    "TopReply",
    "Topic",
    "TopicInfoReply",
    "TopicListReply",
    "TopicReceiver",
    "WaitReply",
]
