"""What node authors import: `from node_sdk import Node`."""

from node_sdk.errors import DaemonUnreachable, NodeError, SendTimeout
from node_sdk.events import Event, EventType, StopCause
from node_sdk.inbox import InputStatistics
from node_sdk.node import Node, NodeStatistics, OutputStatistics

__all__ = [
    "DaemonUnreachable",
    "Event",
    "EventType",
    "InputStatistics",
    "Node",
    "NodeError",
    "NodeStatistics",
    "OutputStatistics",
    "SendTimeout",
    "StopCause",
]
