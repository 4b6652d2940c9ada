"""Control requests about one node of a live run: details, stop, restart, edits, parameters."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import ParamText
from daemon.model.replies_nodes import EdgeReply, NodeIdReply, NodeListReply, NodeReply, ParamsReply
from daemon.model.requests_base import Request, Seconds, YamlText


@attrs.frozen
class NodeList(Request[NodeListReply]):
    TYPE = "node_list"
    REPLY = NodeListReply
    DOC = "every node of a live run, in detail"
    run: str


@attrs.frozen
class NodeInfo(Request[NodeReply]):
    TYPE = "node_info"
    REPLY = NodeReply
    DOC = "one node in detail: wiring, queues, drops, rates"
    run: str
    node: str


@attrs.frozen
class NodeStop(Request[NodeReply]):
    TYPE = "node_stop"
    REPLY = NodeReply
    DOC = "stop one node (STOP, grace, SIGTERM, SIGKILL)"
    run: str
    node: str
    grace: Seconds | None = None


@attrs.frozen
class NodeRestart(Request[NodeReply]):
    TYPE = "node_restart"
    REPLY = NodeReply
    DOC = "restart one node in its slot; replies with the new generation, once spawned"
    run: str
    node: str
    grace: Seconds | None = None


@attrs.frozen
class NodeAdd(Request[NodeIdReply]):
    TYPE = "node_add"
    REPLY = NodeIdReply
    DOC = "add one node to a live run (path: the snippet's absolute path, text: its YAML)"
    run: str
    path: str
    text: YamlText


@attrs.frozen
class NodeRemove(Request[NodeIdReply]):
    TYPE = "node_remove"
    REPLY = NodeIdReply
    DOC = "stop a node and take it out of the graph"
    run: str
    node: str


@attrs.frozen
class NodeConnect(Request[EdgeReply]):
    TYPE = "node_connect"
    REPLY = EdgeReply
    DOC = "map source (node/output) to target (node/input) in a live run"
    run: str
    source: str
    target: str


@attrs.frozen
class NodeDisconnect(Request[EdgeReply]):
    TYPE = "node_disconnect"
    REPLY = EdgeReply
    DOC = "remove the mapping source -> target"
    run: str
    source: str
    target: str


@attrs.frozen
class ParamList(Request[ParamsReply]):
    TYPE = "param_list"
    REPLY = ParamsReply
    DOC = "a node's parameters now: its YAML `params:`, then every change (JSON texts)"
    run: str
    node: str


@attrs.frozen
class ParamSet(Request[ParamsReply]):
    TYPE = "param_set"
    REPLY = ParamsReply
    DOC = (
        "set (value: JSON text) or delete (value null) one parameter of a running node; "
        "stored only once the node took it within timeout (null: 5 s)"
    )
    run: str
    node: str
    key: str
    value: ParamText | None
    timeout: Seconds | None = None
