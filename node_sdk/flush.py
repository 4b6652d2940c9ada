"""A sender's end: end-of-stream on each edge, then what it queued delivered to every
receiver that is still there or coming back, within one bound, before its sockets go.

zmq's linger alone cannot do this. A socket closed with a short linger throws away what a
slow receiver (a loaded machine) has not taken yet, and one closed with a long linger
waits all of it when its receiver has exited, because the connecting side keeps retrying
with the messages held. So each edge socket gets a monitor when the node ends: it is
closed with a linger as long as what is left of the bound, and `MONITOR_STOPPED` (sent
when zmq has handed over everything and let the socket go) says it is delivered.

`DISCONNECTED`, `CLOSED` or `CONNECT_RETRIED` (a connection that broke, or an attempt that
failed), or a missing `ipc://` socket file (a receiver that closed its input removed it),
say the receiver is down, and a receiver between two generations (killed, its next one not
bound yet) looks exactly like one gone for good. Only the daemon knows which: it tells each
sender `receiver_down {node, restarting}` (the receiver thread keeps the word in
`Sender.receivers`), and a stop of the whole run says that no receiver that is down comes
back. A receiver is given up when the daemon says it is gone for good, when it is down and
the whole run stops, or when it is down and the daemon has said nothing of it for
`WORD_WAIT_S` (a receiver it does not supervise, an observer, or no daemon at all); one the
daemon says is restarting is waited for, within the bound, and gets the messages and
end-of-stream queued for it once its next generation binds. A socket given up before it
is closed is closed with no linger, and one given up later is left to finish its linger in
the background (`Ending.close` says so). The bound is the node's `send_timeout_s`, the one
a blocked send has (a keeper's `send_stdout_as` sockets at its end: `END_BOUND_S`).
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

import zmq

log = logging.getLogger(__name__)

_STOPPED: Final = zmq.EVENT_MONITOR_STOPPED
_GONE: Final = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_CONNECT_RETRIED
_MONITORS: Final = itertools.count()  # each monitor's own inproc address
_EVENT: Final = struct.Struct("<H")  # the first two bytes of a monitor event's first frame
# the daemon's word for every receiver at once: the whole run stops (`stop {everyone}`)
EVERY_RECEIVER: Final = "*"  # never a node id
# how long a down receiver is waited for with no word from the daemon: its word follows
# the receiver's exit by the keeper's report and one message (milliseconds, unless loaded)
WORD_WAIT_S: Final = 1.0
# while a down receiver waits for the daemon's word (kept by another thread), the monitors
# are polled for this long at a time, so a word that came in is seen
WORD_POLL_S: Final = 0.02


class EdgeSocket(Protocol):
    """What this module needs of a sender's edge (outputs.py's `SendEdge`, and the keeper's
    `StdoutEdge` for a `send_stdout_as` output)."""

    @property
    def sock(self) -> zmq.Socket[Any]: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def receiver(self) -> str: ...  # "node/input"

    @property
    def link(self) -> Any: ...  # tcp.Reconnects of a tcp:// backpressure edge, else None


def socket_file_gone(endpoint: str) -> bool:
    """An `ipc://` receiver that closed its input (or never bound it): no socket file."""
    return endpoint.startswith("ipc://") and not os.path.exists(endpoint[6:])


class _Watch:
    """One edge socket and its monitor, while the node ends."""

    __slots__ = ("down_at", "edge", "lingers", "monitor", "node", "stopped")

    def __init__(self, edge: EdgeSocket) -> None:
        self.edge = edge
        self.node = edge.receiver.partition("/")[0]  # what the daemon's word names
        sock = edge.sock
        if edge.link is not None:  # its handshake monitor gives way: no credit is awaited now
            sock.disable_monitor()
            edge.link.close()
        # an address of its own: the handshake monitor's (pyzmq names it by the socket) may
        # still be bound for a moment after it gave way, and a second bind would fail
        address = f"inproc://flow-ending-{os.getpid()}-{next(_MONITORS)}"
        self.monitor: zmq.Socket[bytes] | None = None
        try:
            sock.monitor(address, _STOPPED | _GONE)
            self.monitor = sock.context.socket(zmq.PAIR)
            self.monitor.linger = 0
            self.monitor.connect(address)
        except zmq.ZMQError as exc:  # out of descriptors: its end waits out the bound unseen
            if self.monitor is not None:
                self.monitor.close(linger=0)
                self.monitor = None
            log.warning("the end of the edge to %s is not watched: %s", edge.receiver, exc)
        # when its connection was first seen broken (monotonic), or None: not seen so
        self.down_at: float | None = None
        if socket_file_gone(edge.endpoint):
            self.down_at = time.monotonic()
        self.stopped = False
        self.lingers = False  # closed with a linger, and not known to be done with it

    @property
    def down(self) -> bool:
        return self.down_at is not None

    def look(self) -> None:
        """Take the monitor's events that are in, and see whether the socket file went away."""
        while self.monitor is not None:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not frames or len(frames[0]) < _EVENT.size:
                continue
            (event,) = _EVENT.unpack_from(frames[0])
            if event == _STOPPED:
                self.stopped = True
            elif event & _GONE and self.down_at is None:
                self.down_at = time.monotonic()
        if self.down_at is None and socket_file_gone(self.edge.endpoint):
            self.down_at = time.monotonic()


class Ending:
    """The end of a sender's edges (the node's own thread): watched from here on.

    `word`: receiver node -> restarting, as the daemon last said (another thread writes it).
    """

    def __init__(
        self, edges: Iterable[EdgeSocket], limit_s: float, word: Mapping[str, bool] | None = None
    ) -> None:
        self.deadline = time.monotonic() + limit_s
        self._word: Mapping[str, bool] = {} if word is None else word
        self._watches = [_Watch(edge) for edge in edges]
        self._by_edge = {id(w.edge): w for w in self._watches}

    @property
    def any_down(self) -> bool:
        """A receiver went down (what was in flight to it will not be released)."""
        return any(w.down for w in self._watches)

    def _given_up(self, watch: _Watch, now: float) -> bool:
        """Its receiver is not coming back, as far as this sender can know: the daemon says
        it ended for good (it need not be seen down yet: what is queued for it cannot be
        delivered), or it is down and the whole run stops (whatever was said of it before),
        or it is down and the daemon said nothing of it."""
        restarting = self._word.get(watch.node)
        if restarting is False:
            return True
        if watch.down_at is None:
            return False
        if EVERY_RECEIVER in self._word:
            return True
        # no word (yet): the daemon may not have seen the exit
        return not restarting and now - watch.down_at >= WORD_WAIT_S

    def _poll_ms(self, watches: list[_Watch], now: float) -> int:
        """How long to poll: to the bound, or a slice while a down receiver is waited for."""
        remaining = self.deadline - now
        if any(w.down for w in watches):
            remaining = min(remaining, WORD_POLL_S)
        return int(remaining * 1000) + 1

    def send_last(self, edge: EdgeSocket, frames: list[bytes]) -> bool:
        """Queue `frames` (an end-of-stream) on `edge`, waiting for room while its receiver
        is there (or coming back) and the bound lasts; False if given up."""
        watch = self._by_edge[id(edge)]
        sock = edge.sock
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                pass
            watch.look()
            now = time.monotonic()
            if now >= self.deadline or self._given_up(watch, now):
                return False  # the daemon closes that input (upstream_done)
            items = [(sock, zmq.POLLOUT), *_monitors([watch])]
            zmq.zmq_poll(items, self._poll_ms([watch], now))

    def close(self) -> bool:
        """Close every edge socket; wait until each delivered what it queued, its receiver
        is given up, or the bound is over. True if a socket may still be lingering: the
        context's `term` would wait for it (a receiver that went down while waited for)."""
        now = time.monotonic()
        for watch in self._watches:
            watch.look()
            remaining_ms = max(0, int((self.deadline - now) * 1000))
            linger = 0 if self._given_up(watch, now) else remaining_ms
            watch.lingers = linger > 0
            watch.edge.sock.close(linger=linger)
        waiting = [w for w in self._watches if w.lingers]
        while waiting:
            now = time.monotonic()
            if now >= self.deadline:
                break
            zmq.zmq_poll(_monitors(waiting), self._poll_ms(waiting, now))
            now = time.monotonic()
            for watch in waiting:
                watch.look()
                watch.lingers = not watch.stopped
            waiting = [w for w in waiting if w.lingers and not self._given_up(w, now)]
        for watch in self._watches:
            if watch.monitor is not None:
                watch.monitor.close(linger=0)
        # past the bound, a linger ends with it; a receiver down meanwhile leaves one running
        return any(w.lingers and w.down for w in self._watches)


def _monitors(watches: list[_Watch]) -> list[tuple[Any, int]]:
    """The poll items of the watches' monitors (one out of descriptors has none)."""
    return [(w.monitor, zmq.POLLIN) for w in watches if w.monitor is not None]
