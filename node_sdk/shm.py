"""Shared-memory payloads: the sender's segment pool and the receiver's zero-copy leases.

A sender writes a large payload into a segment of its own pool (files under /dev/shm named
`flow-<run12>-<node8>g<generation>-<n>`, so the daemon can remove a run's segments by
prefix however the run ends) and sends a descriptor frame (kind 6) instead of the bytes.
A receiver maps the segment once and hands out read-only views backed by a *lease*; when
the last view of a lease is gone, a release notice (`<seg, use>`) goes back to the
sender's release PULL. A segment whose every receiver released it goes back to the free
list; nothing here ever blocks: a pool at its cap, or a /dev/shm that is full, makes the
sender fall back to sending the bytes inline (`acquire` returns None).

Python 3.11 has no `__buffer__`, so a lease is a ctypes array laid over the receiver's
mapping (`from_buffer`): memoryviews, numpy arrays and pyarrow buffers made from it keep it
alive, and its `__del__` sends the notice. ctypes is imported with this module, which only
nodes that send or receive a large payload import.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import mmap
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import zmq

from node_sdk import inbox, paths
from node_sdk.errors import NodeError
from node_sdk.wire import KIND_BYTES

log = logging.getLogger(__name__)

SHM_DIR: Final = "/dev/shm"
NAME_PREFIX: Final = "flow-"
DEFAULT_CAP_BYTES: Final = 1 << 30  # mapped by one sender's pool, in flight or free
MAX_SEGMENTS: Final = 256
CLOSE_WAIT_S: Final = 0.5  # close waits this long for receivers to release in-flight segments
# descriptor: magic, inner kind, segment number, use count, payload size
DESCRIPTOR: Final = struct.Struct("<4sBxxxIIQ")
DESCRIPTOR_MAGIC: Final = b"FLWS"
RELEASE: Final = struct.Struct("<II")  # segment number, use count
_LEASE_TYPES_MAX: Final = 64
FLUSH_AT: Final = 32  # release notices queued before they are sent without waiting for more


def run_prefix(run_id: str) -> str:
    """The name prefix of every segment of a run (the daemon removes them by it)."""
    return f"{NAME_PREFIX}{paths.run_short_id(run_id)}-"


def sender_tag(node_id: str, generation: int) -> str:
    """A short, path-safe tag of one generation of one node."""
    return f"{hashlib.sha1(node_id.encode()).hexdigest()[:8]}g{generation}"


def _size_class(nbytes: int, minimum: int) -> int:
    size = max(minimum, 4096)
    while size < nbytes:
        size <<= 1
    return size


class Segment:
    """One shared-memory file of a sender's pool, mapped read-write."""

    __slots__ = ("map", "name", "number", "pending", "size", "tail", "use")

    def __init__(
        self, number: int, name: str, size: int, mapping: mmap.mmap, endpoint: str
    ) -> None:
        self.number = number
        self.name = name
        self.size = size
        self.map = mapping
        self.tail = f"{name}\n{endpoint}".encode()  # the descriptor's constant part
        self.use = 0  # bumped at every acquire: a late notice of an older use is ignored
        self.pending = 0  # receivers that have not released it yet


class Pool:
    """A sender's segments: acquire, fill, publish to N receivers, get back on release."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        run_id: str,
        tag: str,
        release_endpoint: str,
        threshold: int,
        cap_bytes: int = DEFAULT_CAP_BYTES,
    ) -> None:
        self._ctx = ctx
        self.prefix = f"{run_prefix(run_id)}{tag}-"
        self.endpoint = release_endpoint
        self._threshold = threshold
        self._cap = cap_bytes
        self._mapped = 0
        self._segments: list[Segment] = []
        self._free: dict[int, list[Segment]] = {}
        self._pull: zmq.Socket[Any] | None = None
        self._broken = False  # binding failed once: inline from now on
        self.fallbacks = 0  # large payloads sent inline because no segment was available

    def acquire(self, nbytes: int) -> Segment | None:
        """A free segment of at least `nbytes`, or None (send inline): never blocks."""
        if self._broken or (self._pull is None and not self._bind()):
            return None
        size = _size_class(nbytes, self._threshold)
        free = self._free.get(size)
        if not free:
            self.poll_releases()
            free = self._free.get(size)
        if free:
            segment = free.pop()
        else:
            made = self._create(size)
            if made is None:
                self.fallbacks += 1
                return None
            segment = made
        segment.use = (segment.use + 1) & 0xFFFFFFFF
        return segment

    def descriptor(self, segment: Segment, kind: int, nbytes: int) -> bytes:
        """The payload frame that stands for `nbytes` of `segment` (inner `kind`)."""
        head = DESCRIPTOR.pack(DESCRIPTOR_MAGIC, kind, segment.number, segment.use, nbytes)
        return head + segment.tail

    def publish(self, segment: Segment, receivers: int) -> None:
        """`segment` went to `receivers` receivers; with none it is free again now."""
        segment.pending = receivers
        if receivers <= 0:
            self._free.setdefault(segment.size, []).append(segment)

    def give_back(self, segment: Segment) -> None:
        """An acquired segment that was never sent."""
        self.publish(segment, 0)

    def poll_releases(self) -> int:
        """Take every release notice that arrived; how many segments became free."""
        pull = self._pull
        if pull is None:
            return 0
        freed = 0
        segments = self._segments
        while True:
            try:
                note = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return freed
            if len(note) != RELEASE.size:
                continue
            number, use = RELEASE.unpack(note)
            if number >= len(segments):
                continue
            segment = segments[number]
            if segment.use != use or segment.pending <= 0:
                continue  # a notice of an older use, or a repeat
            segment.pending -= 1
            if segment.pending == 0:
                self._free.setdefault(segment.size, []).append(segment)
                freed += 1

    @property
    def in_flight(self) -> int:
        return sum(1 for s in self._segments if s.pending > 0)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Unlink every segment no receiver holds; wait a little for the ones in flight.

        A segment still held after `wait_s` is left in place (a receiver may not have
        mapped it yet); the daemon removes it by the run's prefix when the run ends.
        """
        deadline = time.monotonic() + wait_s
        while self._pull is not None and self.in_flight:
            self.poll_releases()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.in_flight:
                break
            self._pull.poll(int(remaining * 1000) + 1, zmq.POLLIN)
        for segment in self._segments:
            if segment.pending <= 0:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(SHM_DIR, segment.name))
            with contextlib.suppress(BufferError, ValueError):
                segment.map.close()  # a user's send buffer may still export it
        self._segments.clear()
        self._free.clear()
        if self._pull is not None:
            self._pull.close(linger=0)
            self._pull = None

    def _bind(self) -> bool:
        pull = self._ctx.socket(zmq.PULL)
        pull.linger = 0
        pull.rcvhwm = 0  # notices are tiny and must not be lost: no bound on their queue
        try:
            pull.bind(self.endpoint)
        except zmq.ZMQError as exc:
            pull.close(linger=0)
            self._broken = True
            log.warning("shared memory off: cannot bind %s: %s", self.endpoint, exc)
            return False
        self._pull = pull
        return True

    def _create(self, size: int) -> Segment | None:
        if self._mapped + size > self._cap or len(self._segments) >= MAX_SEGMENTS:
            self.poll_releases()
            return None
        number = len(self._segments)
        name = f"{self.prefix}{number}"
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            log.warning("shared memory: cannot create %s: %s", path, exc)
            return None
        try:
            # reserve the pages now: a full /dev/shm is an error here, not a SIGBUS later
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size)
        except OSError as exc:
            os.unlink(path)
            log.warning("shared memory: cannot allocate %d bytes in %s: %s", size, path, exc)
            return None
        finally:
            os.close(fd)
        segment = Segment(number, name, size, mapping, self.endpoint)
        self._segments.append(segment)
        self._mapped += size
        return segment


# ---------------------------------------------------------------- receiver side


class _Releases:
    """Release notices to senders: one PUSH per sender, sent under a lock never waited for.

    A notice is queued, and sent later in a batch: when the node's thread enters `next()`
    or is about to wait in it, when the receiver thread wakes (at least once a second), or
    when `FLUSH_AT` are queued. A lease dies when the event holding it is replaced by the
    next one, so sending at once would put a zmq send between a message's arrival and the
    user's code. `__del__` of a lease can run in any thread and in the middle of anything,
    so this never blocks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._socks: dict[str, zmq.Socket[Any]] = {}
        self._ctx: zmq.Context[Any] | None = None
        self.closed = False  # after the node closed: leases that die later tell no one

    def note(self, endpoint: str, number: int, use: int) -> None:
        if self.closed:
            return
        queue = self._queue
        queue.append((endpoint, RELEASE.pack(number, use)))
        if len(queue) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._queue or not self._lock.acquire(blocking=False):
            return
        try:
            while self._queue:
                endpoint, note = self._queue.popleft()
                sock = self._socks.get(endpoint)
                if sock is None:
                    sock = self._socks[endpoint] = self._socket(endpoint)
                with contextlib.suppress(zmq.ZMQError):  # a sender gone: nothing to tell
                    sock.send(note, zmq.NOBLOCK)
        finally:
            self._lock.release()

    def _socket(self, endpoint: str) -> zmq.Socket[Any]:
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PUSH)
        sock.linger = 200  # at exit, a moment to hand the last notices over
        sock.connect(endpoint)
        return sock

    def close(self) -> None:
        self.closed = True
        with self._lock:
            for sock in self._socks.values():
                sock.close()
            self._socks.clear()
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None


_releases = _Releases()
# descriptor tail (segment name, release endpoint) -> (mapping, endpoint)
_maps: dict[bytes, tuple[mmap.mmap, str]] = {}
_maps_lock = threading.Lock()
_lease_types: dict[int, type[Any]] = {}


def _lease_type(nbytes: int) -> type[Any]:
    made = _lease_types.get(nbytes)
    if made is None:
        if len(_lease_types) >= _LEASE_TYPES_MAX:
            _lease_types.clear()

        def __del__(self: Any) -> None:
            with contextlib.suppress(Exception):  # interpreter shutdown: nothing to do
                _releases.note(*self._flow_note)

        made = type("ShmLease", (ctypes.c_char * nbytes,), {"__del__": __del__})
        _lease_types[nbytes] = made
    return made


def _mapping(tail: bytes) -> tuple[mmap.mmap, str]:
    """The mapping of the segment a descriptor tail names, and its release endpoint."""
    with _maps_lock:
        known = _maps.get(tail)
        if known is not None:
            return known
        try:
            name, _, endpoint = tail.decode().partition("\n")
        except UnicodeDecodeError:
            raise NodeError("shared-memory descriptor with a name that is not UTF-8") from None
        if "/" in name or not name.startswith(NAME_PREFIX):
            raise NodeError(f"shared-memory descriptor names a bad segment {name!r}")
        try:
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
        except OSError as exc:
            raise NodeError(f"shared-memory segment {name} is gone: {exc.strerror}") from None
        try:
            mapping = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        if len(_maps) >= MAX_SEGMENTS:
            _maps.clear()  # leases keep their own mappings alive; the cache only forgets
        known = _maps[tail] = (mapping, endpoint)
        return known


def parse_descriptor(frame: Any) -> tuple[int, int, int, int, bytes]:
    """(inner kind, segment number, use, nbytes, tail naming the segment and its sender)."""
    if len(frame) <= DESCRIPTOR.size:
        raise NodeError(f"shared-memory descriptor of {len(frame)} bytes")
    magic, kind, number, use, nbytes = DESCRIPTOR.unpack_from(frame)
    if magic != DESCRIPTOR_MAGIC:
        raise NodeError("shared-memory descriptor with a bad magic")
    return kind, number, use, nbytes, bytes(frame[DESCRIPTOR.size :])


def open_payload(
    frame: Any, extra: Mapping[str, Any], decode: Callable[[int, Any, Mapping[str, Any]], Any]
) -> Any:
    """A descriptor frame -> the value, backed by the segment without a copy.

    The lease is released (and the sender told) when the last view of it is gone: at once
    for a `str` (decoding copies) or an empty payload.
    """
    kind, number, use, nbytes, tail = parse_descriptor(frame)
    _releases.closed = False
    mapping, endpoint = _mapping(tail)
    if nbytes > len(mapping):
        raise NodeError(f"shared-memory descriptor of {nbytes} bytes for a smaller segment")
    lease = _lease_type(nbytes).from_buffer(mapping)
    lease._flow_note = (endpoint, number, use)
    view = memoryview(lease).cast("B").toreadonly()
    del lease  # the view holds it now
    return view if kind == KIND_BYTES else decode(kind, view, extra)


def discard(frame: Any) -> None:
    """Release a descriptor that will never be read (dropped or refused by the inbox)."""
    try:
        _, number, use, _, tail = parse_descriptor(frame)
    except NodeError:
        return
    endpoint = tail.partition(b"\n")[2].decode(errors="replace")
    _releases.closed = False
    _releases.note(endpoint, number, use)


def flush_releases() -> None:
    """Send notices that a concurrent release left queued (the node calls it now and then)."""
    _releases.flush()


# the node flushes through node_sdk.inbox, which does not import this module
inbox.release_flushers.append(flush_releases)


def close_releases() -> None:
    """Flush and close the release sockets (at node close)."""
    _releases.flush()
    _releases.close()


def pool_for(
    ctx: zmq.Context[Any], run_id: str, node_id: str, generation: int, daemon: str,
    threshold: int,
) -> Pool | None:  # fmt: skip
    """The pool of a node whose daemon is local (`ipc://`), else None (no shared memory).

    Its release PULL lives in the run's socket folder, next to the input sockets.
    """
    if not daemon.startswith("ipc://") or not os.path.isdir(SHM_DIR):
        return None
    sockdir = os.path.dirname(daemon[len("ipc://") :])
    run_dir = os.path.join(sockdir, paths.run_short_id(run_id))
    tag = sender_tag(node_id, generation)
    folder = run_dir if os.path.isdir(run_dir) else sockdir
    return Pool(ctx, run_id, tag, f"ipc://{folder}/r{tag}", threshold)
