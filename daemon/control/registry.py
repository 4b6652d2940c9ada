"""Request class -> handler, for every class of `daemon.model.requests.REQUESTS`.

The handlers live one module per area (runs, nodes, graph edits, topics, top); this module
only joins their tables and checks, at import, that every request type has exactly one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from daemon.control.cluster import CLUSTER_HANDLERS
from daemon.control.edits import EDIT_HANDLERS
from daemon.control.nodes import NODE_HANDLERS
from daemon.control.params import PARAM_HANDLERS
from daemon.control.prune import PRUNE_HANDLERS
from daemon.control.recordings import RECORD_HANDLERS
from daemon.control.runs import RUN_HANDLERS
from daemon.control.top import TOP_HANDLERS
from daemon.control.topic_tools import TOPIC_TOOL_HANDLERS
from daemon.control.topics import TOPIC_HANDLERS
from daemon.model.errors import BrokenInvariant
from daemon.model.requests import REQUESTS, Request
from daemon.run.runtime import Runtime

Handler = Callable[[Runtime, Any], Awaitable[Any]]


def _join(*tables: dict[type[Any], Any]) -> dict[type[Request[Any]], Handler]:
    joined: dict[type[Request[Any]], Handler] = {}
    for table in tables:
        for cls, handler in table.items():
            if cls in joined:
                raise BrokenInvariant(f"two handlers for request type {cls.TYPE!r}")
            joined[cls] = handler
    missing = sorted(cls.TYPE for cls in REQUESTS.values() if cls not in joined)
    if missing:
        raise BrokenInvariant(f"request types without a handler: {', '.join(missing)}")
    return joined


HANDLERS: dict[type[Request[Any]], Handler] = _join(
    RUN_HANDLERS, NODE_HANDLERS, EDIT_HANDLERS, TOPIC_HANDLERS, TOPIC_TOOL_HANDLERS, TOP_HANDLERS,
    PRUNE_HANDLERS, CLUSTER_HANDLERS, PARAM_HANDLERS, RECORD_HANDLERS,
)
