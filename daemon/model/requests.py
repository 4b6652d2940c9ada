"""Every control request type by its name on the wire: the registry the daemon decodes with.

A class's `TYPE` is its name on the wire and `REPLY` the class of its reply body; the
daemon's handlers (`daemon.control.registry`) are keyed by these classes, and
docs/protocol.md's request table is generated from `REQUESTS`, which holds every request
class the four modules by what they are about define (`requests_runs`, `requests_nodes`,
`requests_watch`, `requests_cluster`): a request type is written once, as its class. A
`flow` command imports the module of the one it sends, about a third of the classes, where
importing this module builds every one (attrs makes each class's methods: tens of
milliseconds of each command's start). Every name is also here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from daemon.model import requests_cluster, requests_nodes, requests_runs, requests_watch
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



def _defined_in(*modules: ModuleType) -> dict[str, type[Request[Any]]]:
    """Every request class the modules define, by its `TYPE`, in the order they define them:
    a new request is registered by being written in one of them."""
    return {
        value.TYPE: value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Request)
        and value.__module__ == module.__name__
    }


REQUESTS: dict[str, type[Request[Any]]] = _defined_in(
    requests_runs, requests_nodes, requests_watch, requests_cluster
)
