"""Links of tcp:// inputs: a source whose connection broke is closed (docs/cluster-data.md).

Locally the daemon tells a node when an upstream died (`upstream_done`); across machines
that daemon may be gone with its machine, so a tcp:// input watches its own connections.
ZeroMQ heartbeats drop a connection whose peer stopped answering; this module learns it
from the socket's monitor (`EVENT_DISCONNECTED`, the connection's file descriptor) and
closes every source last heard on that connection, unless the source is heard again on a
new connection within `link_grace_s` (a sender that reconnects keeps its stream: sequence
numbers refuse repeats and count gaps, as on any edge). Closing a source is the inbox's
usual `close_source`: INPUT_CLOSED once every source of the input is closed. It is done by
the inputs' owner once it has read the socket empty (`settle`), so every message the
connection delivered before it broke comes first; the receiver thread only says when.

Which connection a message came on is its frame's source descriptor (`zmq.SRCFD`), which
the inputs' owner hands to `heard` (tcp:// inputs only: the header is then read as a
frame). A descriptor number may be reused by a later connection, so a broken one is remembered
with the count of connections accepted on its descriptor, and only a message on a newer one is a
sign of life; a message drained after its connection broke cuts its source too (looked at
again after LATE_RECHECK_S: it may have been the first of a newer connection after all).
The monitors are the receiver thread's; `heard` runs in whichever thread owns the inputs.
It only replaces dict entries (atomic under the GIL), and `_cut`/`settle` copy before
they iterate.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from typing import Any, Final

import zmq

from node_sdk.inbox import Inbox

log = logging.getLogger(__name__)

EVENTS: Final = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
# a monitor event's first frame: the event (u16) and its value (u32: here a descriptor).
# Parsed here, not by zmq.utils.monitor, which imports asyncio (~40 ms a node would pay)
EVENT: Final = struct.Struct("=HI")
# A message read after its descriptor's disconnect may also be the first of a new connection
# on the same descriptor number whose accept this thread has not seen yet (the monitor is
# read by the other thread): such a cut waits at least this long, then looks again.
LATE_RECHECK_S: Final = 0.5


class Links:
    """The tcp:// inputs' connections and the sources heard on each."""

    def __init__(self, inbox: Inbox, grace_s: float) -> None:
        self._inbox = inbox
        self._grace_s = grace_s
        self.monitors: dict[zmq.Socket[Any], str] = {}  # monitor PAIR -> input id
        self._where: dict[tuple[str, str], int] = {}  # (input, source) -> fd last heard on
        self._accepts: dict[int, int] = {}  # fd -> connections accepted on it
        self._dead: dict[int, int] = {}  # fd -> its accept count when it disconnected
        self._cuts: dict[tuple[str, str], float] = {}  # -> when it closes
        self._late: dict[tuple[str, str], tuple[int, int]] = {}  # cut by `heard`: fd, accepts

    def watch(self, input_id: str, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        """Monitor a bound tcp:// input; the monitor socket the receiver thread polls."""
        monitor = sock.get_monitor_socket(EVENTS)
        monitor.setsockopt(zmq.LINGER, 0)
        self.monitors[monitor] = input_id
        return monitor

    def heard(self, input_id: str, source: str, fd: int) -> None:
        """A message of `source` came on connection `fd` (the inputs' owner)."""
        key = (input_id, source)
        accepts = self._accepts.get(fd, 0)
        if self._dead.get(fd) == accepts:
            # read late from a connection that is gone already: not a sign of life, and
            # the cut may have missed this source (its messages were not drained yet)
            if key not in self._cuts:
                self._late[key] = (fd, accepts)
                self._cuts[key] = time.monotonic() + max(self._grace_s, LATE_RECHECK_S)
            return
        if self._cuts.pop(key, None) is not None or self._where.get(key) != fd:
            self._late.pop(key, None)
            self._where[key] = fd

    def on_event(self, monitor: zmq.Socket[Any]) -> None:
        """Read every monitor event ready (the receiver thread)."""
        input_id = self.monitors[monitor]
        while True:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[0]) != EVENT.size:
                continue
            event, fd = EVENT.unpack(frames[0])
            if event == zmq.EVENT_ACCEPTED:
                self._accepts[fd] = self._accepts.get(fd, 0) + 1
            elif event == zmq.EVENT_DISCONNECTED:
                self._cut(input_id, fd)

    def _cut(self, input_id: str, fd: int) -> None:
        deadline = time.monotonic() + self._grace_s
        self._dead[fd] = self._accepts.get(fd, 0)
        for key, where in list(self._where.items()):
            if key[0] == input_id and where == fd:
                self._cuts[key] = deadline
                self._where.pop(key, None)

    def next_deadline(self) -> float | None:
        deadlines = list(self._cuts.values())
        return min(deadlines) if deadlines else None

    def settle(self, input_id: str) -> bool:
        """Close the sources of `input_id` cut for longer than the grace; True if any was.

        Only the inputs' owner calls it, right after reading the input's socket empty:
        what the broken connection delivered before it broke is queued by then.
        """
        closed = False
        now = time.monotonic()
        for key, deadline in list(self._cuts.items()):
            if key[0] != input_id or deadline > now or self._cuts.pop(key, -1.0) < 0:
                continue
            late = self._late.pop(key, None)
            if late is not None and self._accepts.get(late[0], 0) != late[1]:
                self._where[key] = late[0]  # it came on a newer connection after all
                continue
            if self._inbox.at_rest(*key):
                # its stream or its generation ended before the connection closed (a
                # dynamic node detached, a node stopped for a restart, the run stopping):
                # nothing broke, and what follows is a next generation's or the daemon's word
                continue
            log.warning("input %r: source %s closed: its tcp:// link broke", *key)
            self._inbox.close_source(*key)
            closed = True
        return closed

    def close(self) -> None:
        for monitor in self.monitors:
            with contextlib.suppress(zmq.ZMQError):
                monitor.close(linger=0)
        self.monitors.clear()
