"""flow's `dora` module: `from dora import Node` in a node flow runs, as dora-rs 1.x behaves.

`Node` is flow's node with what differs in dora kept dora's way (docs/coming-from-dora.md):
`next(timeout)` gives an ERROR event on timeout (dora 1.x: "Timeout event stream error:
Receiver timed out"), not None; a timer's first tick fires at once; `metadata["timestamp"]`
is a UTC `datetime`; raw bytes arrive as a pyarrow `UInt8Array` (without a copy) and a
timer tick's value is an empty `NullArray` when pyarrow is installed, as dora delivers them.
All checked against dora-rs 1.1.0 (docs/coming-from-dora.md).
"""

from __future__ import annotations

import atexit
import datetime
import enum
import logging
import os
from collections.abc import Iterator
from typing import Any

import node_sdk
from node_sdk import logbridge
from node_sdk.errors import NodeError
from node_sdk.events import Event, EventType

from .commands import build, run  # relative: `dora.commands` when imported as `dora`
from .typecheck import OutputTypeError, checks

__all__ = ["DoraStatus", "Node", "OutputTypeError", "build", "run"]

MIN_LOG_LEVEL_ENV = "FLOW_DORA_MIN_LOG_LEVEL"  # the daemon sets it for `min_log_level`
TIMEOUT_ERROR = "Timeout event stream error: Receiver timed out"
_UTC = datetime.UTC


class DoraStatus(enum.Enum):
    """What a dora operator's `on_event` returns (operators do not run on flow)."""

    CONTINUE = 0
    STOP = 1
    STOP_ALL = 2


def _as_dora(event: Event) -> Event:
    """The same event with a datetime timestamp and bytes as an Arrow array."""
    metadata = event.metadata
    stamp = metadata.get("timestamp")
    if type(stamp) is int:
        metadata["timestamp"] = datetime.datetime.fromtimestamp(stamp / 1e9, tz=_UTC)
    value = event.value
    if type(value) is memoryview:
        value = _uint8_array(value)
    elif value is None and event.type is EventType.INPUT:
        value = _no_value()  # a timer tick (or a sent None): dora's empty NullArray
    else:
        return event
    return Event(event.type, event.id, value, metadata, event.error, event.seq)


def _uint8_array(view: memoryview) -> Any:
    try:
        import pyarrow as pa  # dora nodes use it; a node without pyarrow gets the view
    except ImportError:
        return view
    return pa.Array.from_buffers(pa.uint8(), view.nbytes, [None, pa.py_buffer(view)])


_EMPTY: list[Any] = []  # the one empty NullArray, made on the first tick


def _no_value() -> Any:
    if not _EMPTY:
        try:
            import pyarrow as pa
        except ImportError:
            return None
        _EMPTY.append(pa.nulls(0))
    return _EMPTY[0]


class Node(node_sdk.Node):
    """A node of a flow dataflow with dora 1.x's behaviour."""

    first_tick_at_once = True

    def __init__(self, node_id: str | None = None, daemon_port: int | None = None) -> None:
        # `daemon_port` is dora's way to a daemon on another port; a dynamic node finds
        # flow's daemon through FLOW_HOME instead, so the port has no use here
        del daemon_port
        super().__init__(node_id)
        self._send = self.send_output  # the sender's own method (set by node_sdk.Node)
        self.send_output = self._send_dora  # type: ignore[method-assign]
        # the interpreter's exit closes the node while a daemon thread of the node's code
        # may still be sending (python-concurrent-rw's publisher): as under dora, whose
        # node lives until the process ends, such late sends are dropped, not errors
        self._exiting = False
        atexit.unregister(super().close)
        atexit.register(self._close_at_exit)
        # `output_types` checked at each send (typecheck.py): an empty dict when none
        self._type_checks = checks(self.node_id, self.node_config().get("output_types"))

    def _send_dora(
        self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
    ) -> None:
        # a received event's metadata sent on as is (python-echo does): its datetime
        # `timestamp` is replaced by the new send time, as dora stamps every message anew
        check = self._type_checks.get(output_id)
        if check is not None:
            check(data)
        if isinstance(metadata, dict) and isinstance(metadata.get("timestamp"), datetime.datetime):
            metadata = {k: v for k, v in metadata.items() if k != "timestamp"}
        try:
            self._send(output_id, data, metadata)
        except NodeError:
            if not self._exiting:
                raise

    def _close_at_exit(self) -> None:
        self._exiting = True
        self.close()

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event; an ERROR event on timeout, None once the stream has ended."""
        event = super().next(timeout)
        if event is None:
            if self.timed_out:
                return Event(EventType.ERROR, error=TIMEOUT_ERROR)
            return None
        return _as_dora(event)

    def try_recv(self) -> Event | None:
        event = super().try_recv()
        return None if event is None else _as_dora(event)

    def drain(self) -> list[Event]:
        return [_as_dora(event) for event in super().drain()]

    def __iter__(self) -> Iterator[Event]:
        for event in super().__iter__():
            yield _as_dora(event)

    def log(self, level: int | str, message: str) -> None:
        """A record of the node's log. As dora's `log_*`, every level is written (and sent
        to `dora/logs`) unless the node's `min_log_level` (FLOW_LOG_LEVEL) sets one."""
        logger = logging.getLogger(self.node_id)
        number = logbridge.to_level(level)
        if logger.isEnabledFor(number) or MIN_LOG_LEVEL_ENV in os.environ:
            logger.log(number, message)
        else:
            logger.handle(logger.makeRecord(logger.name, number, "", 0, message, (), None))

    def is_restart(self) -> bool:
        return self.restart_count() > 0

    def timestamp(self) -> datetime.datetime:
        """Now, as the UTC datetime `metadata["timestamp"]` is compared with."""
        return datetime.datetime.now(_UTC)
