"""What node authors import: `from node_sdk import Node`.

The public names load on first use (PEP 562), so `import node_sdk.paths` or
`node_sdk.wire` from the daemon and the CLI does not pull in zmq and the node machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node_sdk.errors import DaemonUnreachable, MessageTooLarge, NodeError, SendTimeout
    from node_sdk.events import Event, EventType, StopCause
    from node_sdk.inbox import InputStatistics
    from node_sdk.node import Node, NodeStatistics, OutputStatistics

_HOMES = {
    "DaemonUnreachable": "node_sdk.errors",
    "MessageTooLarge": "node_sdk.errors",
    "NodeError": "node_sdk.errors",
    "SendTimeout": "node_sdk.errors",
    "Event": "node_sdk.events",
    "EventType": "node_sdk.events",
    "StopCause": "node_sdk.events",
    "InputStatistics": "node_sdk.inbox",
    "Node": "node_sdk.node",
    "NodeStatistics": "node_sdk.node",
    "OutputStatistics": "node_sdk.node",
}

__all__ = [
    "DaemonUnreachable",
    "Event",
    "EventType",
    "InputStatistics",
    "MessageTooLarge",
    "Node",
    "NodeError",
    "NodeStatistics",
    "OutputStatistics",
    "SendTimeout",
    "StopCause",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'node_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value
