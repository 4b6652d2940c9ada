"""A sender's end: end-of-stream on each edge, then what it queued delivered to every
receiver that is still there, within one bound, before its sockets go.

zmq's linger alone cannot do this. A socket closed with a short linger throws away what a
slow receiver (a loaded machine) has not taken yet, and one closed with a long linger
waits all of it when its receiver has exited, because the connecting side keeps retrying
with the messages held. So each edge socket gets a monitor when the node ends: it is
closed with a linger as long as what is left of the bound, and `MONITOR_STOPPED` (sent
when zmq has handed over everything and let the socket go) says it is delivered;
`DISCONNECTED`, `CLOSED` or `CONNECT_RETRIED` (a connection that broke, or an attempt that
failed) say the receiver is gone, and so does a missing `ipc://` socket file (a receiver
that closed its input removed it). A gone receiver is not waited for: a socket found gone
before it is closed is closed with no linger, and one that goes away later is left to
finish its linger in the background (`Ending.close` says so). The bound is the node's
`send_timeout_s`, the one a blocked send has.
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from collections.abc import Iterable
from typing import Any, Final, Protocol

import zmq

_STOPPED: Final = zmq.EVENT_MONITOR_STOPPED
_GONE: Final = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_CONNECT_RETRIED
_MONITORS: Final = itertools.count()  # each monitor's own inproc address
_EVENT: Final = struct.Struct("<H")  # the first two bytes of a monitor event's first frame


class EdgeSocket(Protocol):
    """What this module needs of a sender's edge (send.py's `_Edge`)."""

    sock: zmq.Socket[Any]
    endpoint: str
    link: Any  # tcp.Reconnects of a tcp:// backpressure edge, else None


def socket_file_gone(endpoint: str) -> bool:
    """An `ipc://` receiver that closed its input (or never bound it): no socket file."""
    return endpoint.startswith("ipc://") and not os.path.exists(endpoint[6:])


class _Watch:
    """One edge socket and its monitor, while the node ends."""

    __slots__ = ("edge", "gone", "lingers", "monitor", "stopped")

    def __init__(self, edge: EdgeSocket) -> None:
        self.edge = edge
        sock = edge.sock
        if edge.link is not None:  # its handshake monitor gives way: no credit is awaited now
            sock.disable_monitor()
            edge.link.close()
        # an address of its own: the handshake monitor's (pyzmq names it by the socket) may
        # still be bound for a moment after it gave way, and a second bind would fail
        address = f"inproc://flow-ending-{os.getpid()}-{next(_MONITORS)}"
        sock.monitor(address, _STOPPED | _GONE)
        self.monitor = sock.context.socket(zmq.PAIR)
        self.monitor.linger = 0
        self.monitor.connect(address)
        self.gone = socket_file_gone(edge.endpoint)
        self.stopped = False
        self.lingers = False  # closed with a linger, and not known to be done with it

    def read(self) -> None:
        """Take the monitor's events that are in."""
        while True:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not frames or len(frames[0]) < _EVENT.size:
                continue
            (event,) = _EVENT.unpack_from(frames[0])
            if event == _STOPPED:
                self.stopped = True
            elif event & _GONE:
                self.gone = True


class Ending:
    """The end of a sender's edges (the node's own thread): watched from here on."""

    def __init__(self, edges: Iterable[EdgeSocket], limit_s: float) -> None:
        self.deadline = time.monotonic() + limit_s
        self._watches = [_Watch(edge) for edge in edges]
        self._by_edge = {id(w.edge): w for w in self._watches}

    @property
    def any_gone(self) -> bool:
        """A receiver went away (what was in flight to it will not be released)."""
        return any(w.gone for w in self._watches)

    def send_last(self, edge: EdgeSocket, frames: list[bytes]) -> bool:
        """Queue `frames` (an end-of-stream) on `edge`, waiting for room while its receiver
        is there and the bound lasts; False if given up."""
        watch = self._by_edge[id(edge)]
        sock = edge.sock
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                pass
            watch.read()
            remaining = self.deadline - time.monotonic()
            if watch.gone or remaining <= 0 or socket_file_gone(edge.endpoint):
                return False  # the daemon closes that input (upstream_done)
            items = [(sock, zmq.POLLOUT), (watch.monitor, zmq.POLLIN)]
            zmq.zmq_poll(items, int(remaining * 1000) + 1)

    def close(self) -> bool:
        """Close every edge socket; wait until each delivered what it queued, its receiver
        is gone, or the bound is over. True if a socket may still be lingering: the
        context's `term` would wait for it (a receiver that went away while waited for)."""
        for watch in self._watches:
            watch.read()
            if not watch.gone:
                watch.gone = socket_file_gone(watch.edge.endpoint)
            remaining_ms = max(0, int((self.deadline - time.monotonic()) * 1000))
            linger = 0 if watch.gone else remaining_ms
            watch.lingers = linger > 0
            watch.edge.sock.close(linger=linger)
        waiting = [w for w in self._watches if w.lingers]
        while waiting:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                break
            zmq.zmq_poll([(w.monitor, zmq.POLLIN) for w in waiting], int(remaining * 1000) + 1)
            for watch in waiting:
                watch.read()
                watch.lingers = not watch.stopped
            waiting = [w for w in waiting if w.lingers and not w.gone]
        for watch in self._watches:
            watch.monitor.close(linger=0)
        # past the bound, a linger ends with it; a receiver gone meanwhile leaves one running
        return any(w.lingers and w.gone for w in self._watches)
