"""Every control request type by its name on the wire: the registry the daemon decodes with.

A class's `TYPE` is its name on the wire and `REPLY` the class of its reply body; the
daemon's handlers (`daemon.control.registry`) are keyed by these classes, and
docs/protocol.md's request table is generated from `REQUESTS`, so the list of request
types is written exactly once: here. The classes live in four modules by what they are
about (`requests_runs`, `requests_nodes`, `requests_watch`, `requests_cluster`): a `flow`
command imports the one it sends, about a third of the classes, where importing this
module builds every one (attrs makes each class's methods: tens of milliseconds of each
command's start). Every name is also here.
"""

from __future__ import annotations

from typing import Any

from daemon.model.requests_base import (
    MAX_ENV_ENTRIES,
    MAX_ENV_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_PARAM_CHARS,
    MAX_SECONDS,
    MAX_STRING_CHARS,
    MAX_TEXT_CHARS,
    Env,
    Name,
    R,
    Request,
    Seconds,
    YamlText,
)
from daemon.model.requests_cluster import (
    ClusterProbe,
    ClusterRemove,
    ClusterRevoke,
    ClusterStatus,
    ClusterToken,
)
from daemon.model.requests_nodes import (
    NodeAdd,
    NodeConnect,
    NodeDisconnect,
    NodeInfo,
    NodeList,
    NodeRemove,
    NodeRestart,
    NodeStop,
    ParamList,
    ParamSet,
)
from daemon.model.requests_runs import (
    InjectFatal,
    List,
    Logs,
    Ping,
    Prune,
    Restart,
    Shutdown,
    Start,
    Status,
    Stop,
    StopAll,
    Top,
    Wait,
)
from daemon.model.requests_watch import (
    RecordRenew,
    RecordStart,
    RecordStop,
    TopicInfo,
    TopicList,
    TopicPublish,
    TopicRenew,
    TopicSubscribe,
    TopicUnsubscribe,
)

__all__ = [
    "MAX_ENV_ENTRIES",
    "MAX_ENV_VALUE_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PARAM_CHARS",
    "MAX_SECONDS",
    "MAX_STRING_CHARS",
    "MAX_TEXT_CHARS",
    "REQUESTS",
    "ClusterProbe",
    "ClusterRemove",
    "ClusterRevoke",
    "ClusterStatus",
    "ClusterToken",
    "Env",
    "InjectFatal",
    "List",
    "Logs",
    "Name",
    "NodeAdd",
    "NodeConnect",
    "NodeDisconnect",
    "NodeInfo",
    "NodeList",
    "NodeRemove",
    "NodeRestart",
    "NodeStop",
    "ParamList",
    "ParamSet",
    "Ping",
    "Prune",
    "R",
    "RecordRenew",
    "RecordStart",
    "RecordStop",
    "Request",
    "Restart",
    "Seconds",
    "Shutdown",
    "Start",
    "Status",
    "Stop",
    "StopAll",
    "Top",
    "TopicInfo",
    "TopicList",
    "TopicPublish",
    "TopicRenew",
    "TopicSubscribe",
    "TopicUnsubscribe",
    "Wait",
    "YamlText",
]


REQUESTS: dict[str, type[Request[Any]]] = {
    cls.TYPE: cls
    for cls in (
        Ping, Status, Start, Stop, StopAll, Restart, List, Logs, Wait, Shutdown,
        NodeList, NodeInfo, NodeStop, NodeRestart, NodeAdd, NodeRemove, NodeConnect,
        NodeDisconnect, TopicList, TopicSubscribe, TopicRenew, TopicUnsubscribe, Top,
        Prune, TopicInfo, TopicPublish, ClusterToken, ClusterRevoke, ClusterStatus,
        ClusterRemove, ClusterProbe, ParamList, ParamSet,
        RecordStart, RecordRenew, RecordStop, InjectFatal,
    )
}  # fmt: skip
