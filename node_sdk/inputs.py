"""A node's bound input sockets and the decoding of their frames into the inbox.

Read them only as their current owner (ownership.py says which thread that is, and why
exactly one is). Nothing here takes a lock: `add` (the receiver thread, for a live
`add_input`) replaces the socket maps whole before bumping `version`, so a reader sees
either the old maps or the new ones.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Final

import zmq

from node_sdk.config import DataInput, is_tcp
from node_sdk.errors import NodeError
from node_sdk.inbox import Frame, Inbox
from node_sdk.wire import (
    FLAG_LARGE,
    FLAG_PACKED,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_BYTES,
    decode_extra,
    pack_credit,
)

_BATCH: Final = 256  # frames taken from one socket per drain, so inputs take turns
_EXTRA_CACHE_MAX: Final = 256  # distinct header extras remembered (same source, metadata)
_EXTRA_CACHE_LEN: Final = 512  # extras longer than this are parsed every time
_EVENTS: Final = int(zmq.EVENTS)  # plain ints: an enum member costs a conversion per call
_POLLIN: Final = int(zmq.POLLIN)


class Inputs:
    """The input sockets of one node; read them only as their current owner."""

    def __init__(self, inbox: Inbox, inputs: list[tuple[DataInput, zmq.Socket[Any]]]) -> None:
        self.version = 0  # bumped when an input is added, so pollers are rebuilt
        self.malformed = 0  # frames that were not flow data frames (counted, dropped)
        self._inbox = inbox
        self._extras: dict[bytes, dict[str, Any]] = {}
        self._specs = {sock: spec for spec, sock in inputs}
        self._by_id = {spec.id: sock for spec, sock in inputs}
        self.links: Any = None  # links.Links when an input is on tcp:// (set by the node)

    # ------------------------------------------------------------ the owner only

    @property
    def sockets(self) -> list[zmq.Socket[Any]]:
        return list(self._specs)

    def add(self, spec: DataInput, sock: zmq.Socket[Any]) -> None:
        """A live `add_input`'s new socket (bound already)."""
        # new dicts, not changed ones: the owner may be iterating the old
        self._specs = {**self._specs, sock: spec}
        self._by_id = {**self._by_id, spec.id: sock}
        self.version += 1

    def has(self, input_id: str) -> bool:
        return input_id in self._by_id

    def drain_all(self) -> bool:
        """Move every ready frame of every input into the inbox; True if any came.

        The node's thread calls this before each wait, and when messages are paced it
        mostly finds nothing: asking zmq whether a socket has a message costs a fraction
        of a receive that raises `Again`. A node with tcp:// inputs drains every socket:
        reading one empty is what closes the sources of a broken link (links.py)."""
        got = False
        # an empty socket of a backstopped source must be read too: that closes it
        every = self.links is not None or bool(self._inbox.backstops)
        for sock, spec in self._specs.items():
            if every or sock.get(_EVENTS) & _POLLIN:  # type: ignore[operator]  # an int option
                got |= self.drain(spec, sock)
        return got

    def drain_socket(self, sock: zmq.Socket[Any], limit: int = _BATCH) -> None:
        """Drain one input (that zmq poll said is ready: `limit=1` then costs no Again)."""
        self.drain(self._specs[sock], sock, limit)

    def drain(self, spec: DataInput, sock: zmq.Socket[Any], limit: int = _BATCH) -> bool:
        """Move up to `limit` ready frames of one input into the inbox; True if any came."""
        routed = spec.policy == "backpressure"  # a ROUTER: the sender's id comes first
        frames: list[Frame] = []
        extras = self._extras
        links: Any = self.links if is_tcp(spec.endpoint) else None
        fds: list[int] | None = None if links is None else []
        empty = False
        for _ in range(limit):
            try:
                message = _recv(sock, routed, fds)
            except zmq.Again:
                empty = True
                break
            if message is None:
                self.malformed += 1
                continue
            route, header, payload = message
            if len(header) < HEADER_SIZE:
                self.malformed += 1
                continue
            magic, kind, _, _, generation, seq, stamp, size = HEADER.unpack_from(header)
            end = HEADER_SIZE + size
            if magic != MAGIC or len(header) < end or (payload is not None and len(header) != end):
                self.malformed += 1
                continue
            if payload is None:  # packed: the payload follows the extra in the one frame
                payload = memoryview(header)[end:]
            raw_extra = header[HEADER_SIZE:end]
            extra = extras.get(raw_extra)
            if extra is None:
                try:
                    extra = decode_extra(raw_extra)
                except NodeError:
                    self.malformed += 1
                    continue
                # user metadata mostly changes with every message (stamps, counters): only
                # extras without it (source, dtype, shape) repeat, and are worth keeping
                if size <= _EXTRA_CACHE_LEN and "m" not in extra:
                    if len(extras) >= _EXTRA_CACHE_MAX:
                        extras.clear()
                    extras[raw_extra] = extra  # shared: readers copy, never mutate it
            source = extra.get("s")  # a str, or None (decode_extra)
            frames.append((source, generation, seq, stamp, kind, extra, payload, route))
            if fds:  # a tcp:// input: the connection it came on (links.py)
                links.heard(spec.id, source, fds[-1])
        if frames:
            self._inbox.push(spec.id, frames)
        # a tcp:// source whose link broke is closed once its socket is read empty (links.py),
        # and so is a source the daemon's backstop closes (inbox.close_source)
        settled = empty and links is not None and links.settle(spec.id)
        if self._inbox.backstops and (empty or time.monotonic() >= self._inbox.backstop_deadline):
            settled = self._inbox.settle(spec.id, read_empty=empty) or settled
        return bool(frames) or settled

    def pay_credits(self) -> None:
        """Send backpressure senders the credits the inbox owes them."""
        for input_id, route, count in self._inbox.take_credits():
            # a sender that is gone is simply not routable: ROUTER drops silently
            with contextlib.suppress(zmq.Again):
                self._by_id[input_id].send_multipart([route, pack_credit(count)], zmq.NOBLOCK)

    def close(self) -> None:
        for sock in self._specs:
            sock.close(linger=0)


def _recv(
    sock: zmq.Socket[Any], routed: bool, fds: list[int] | None = None
) -> tuple[bytes | None, bytes, Any] | None:
    """One message as (route, header frame, payload frame or None when packed in the
    header's), or None (consumed) if it has another shape. With `fds` (a tcp:// input) the
    descriptor of the connection it came on is appended to it.

    Frame by frame rather than `recv_multipart(copy=False)`: small frames as bytes cost a
    quarter of zmq.Frame objects; only a payload the header flags as large stays a
    zero-copy frame. `get(RCVMORE)`, not the `rcvmore` attribute, which costs twice more;
    and not at all after a packed frame: a stray part after one is read as a message of
    its own, and refused as one (no magic, or a length that does not add up).
    """
    more = sock.get
    route = sock.recv(zmq.NOBLOCK) if routed else None
    if routed and not more(zmq.RCVMORE):
        return None
    if fds is None:
        header = sock.recv(zmq.NOBLOCK)  # a message's parts arrive together: never Again
    else:
        frame = sock.recv(zmq.NOBLOCK, copy=False)
        fds.append(frame.get(zmq.SRCFD))
        header = frame.bytes
    flags = header[5] if len(header) > 5 else 0
    if flags & FLAG_PACKED:
        return route, header, None
    if not more(zmq.RCVMORE):
        return None
    payload = sock.recv(zmq.NOBLOCK, copy=not flags & FLAG_LARGE)
    if more(zmq.RCVMORE):
        _rest(sock)
        return None
    return route, header, payload


def _rest(sock: zmq.Socket[Any]) -> None:
    """Consume the remaining parts of a message of the wrong shape."""
    while sock.get(zmq.RCVMORE):
        sock.recv(zmq.NOBLOCK)


def bind_input(
    ctx: zmq.Context[Any], spec: DataInput, rcvhwm: int, curve: Any = None
) -> zmq.Socket[Any]:
    """A bound socket for one input: a PULL, or for a backpressure input a ROUTER (it pays
    credits back to each sender on the same connection). On tcp:// a CURVE server, set up
    by `curve` (tcp.Curve), which a node with a tcp:// input always has (config.py)."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.ROUTER if spec.policy == "backpressure" else zmq.PULL)
    sock.linger = 0
    sock.rcvhwm = rcvhwm
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # a rogue peer is cut off, never OOMs us
    if is_tcp(spec.endpoint):
        if curve is None:
            sock.close(linger=0)
            raise NodeError(f"input {spec.id!r}: tcp:// without the node's `tcp` keys")
        curve.server(ctx, sock)
    try:
        sock.bind(spec.endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise NodeError(f"input {spec.id!r}: cannot bind {spec.endpoint}: {exc}") from None
    return sock
