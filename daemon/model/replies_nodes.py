"""Reply bodies about one node of a live run: its details, graph edits, parameters."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Json, ParamText


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
