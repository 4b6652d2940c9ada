"""The receiver's side of shared memory: leases on other nodes' segments, release notices.

A receiver maps a segment once and hands out read-only views backed by a *lease*; when the
last view of a lease is gone, its `__del__` queues a release notice (`<seg, use>`) for
the sender's release PULL (node_sdk/shm_format.py has the format, node_sdk/shm.py the
sender's pool). The node owns one `Releases` queue and one `ShmReader`: there is no
module-level state.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import zmq

from node_sdk.errors import NodeError
from node_sdk.shm_format import MAX_NOTICES, RELEASE, parse_descriptor

# node_sdk.shm (the sender's pool) is imported at the first segment mapped, not with this
# module: every node makes a `Releases`, few see a large payload (the format is a leaf)

FLUSH_AT: Final = 16  # release notices queued before they are sent without waiting for more
# ... or notices of this many payload bytes: a sender's pool must not run dry of large ones
FLUSH_BYTES: Final = 2 << 20
_LEASE_TYPES_MAX: Final = 64
# how often a receiver about to wait looks for segments their senders removed (shm.py's
# TRIM_IDLE_S): its cached mapping would keep their memory
SWEEP_S: Final = 1.0
_KIND_ARROW_IPC: Final = 4  # node_sdk.wire.KIND_ARROW (a leaf: wire is not imported here)


class Releases:
    """Release notices to senders, queued, then sent in batches: one PUSH per sender, one
    frame per sender per batch (the notices side by side).

    Owned by the node (made by it and handed to its `ShmReader`); its sockets live in a
    context of its own, made at the first notice. A notice is queued, and sent when the
    node's thread is about to wait in `next()`, when the receiver thread wakes, or when
    `FLUSH_AT` notices or notices of `FLUSH_BYTES` are queued: a lease dies when the event
    holding it is replaced by the next one, so sending at once would put a zmq send
    between a message's arrival and the user's code, and a burst sends one frame for
    many. `__del__` of a lease runs in any thread and in the middle
    of anything, so nothing here blocks: `queue` is a deque (atomic appends), and the one
    lock, taken only without waiting, keeps two threads from flushing on the same sockets.
    """

    def __init__(self) -> None:
        self.queue: deque[tuple[str, bytes]] = deque()  # read by the node to skip a call
        self._lock = threading.Lock()
        self._socks: dict[str, zmq.Socket[Any]] = {}
        self._ctx: zmq.Context[Any] | None = None
        self.closed = False  # after the node closed: leases that die later tell no one
        # payload bytes of the queued notices (a trigger only: a racy count is good enough)
        self._held = 0

    def note(self, endpoint: str, number: int, use: int, nbytes: int = 0) -> None:
        if self.closed:
            return
        queue = self.queue
        queue.append((endpoint, RELEASE.pack(number, use)))
        self._held += nbytes
        if len(queue) >= FLUSH_AT or self._held >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.queue or not self._lock.acquire(blocking=False):
            return
        try:
            self._held = 0
            batches: dict[str, list[bytes]] = {}
            queue = self.queue
            while queue and not self.closed:
                endpoint, note = queue.popleft()
                batch = batches.setdefault(endpoint, [])
                batch.append(note)
                if len(batch) >= MAX_NOTICES:
                    self._send(endpoint, batches.pop(endpoint))
            for endpoint, notes in batches.items():
                self._send(endpoint, notes)
        finally:
            self._lock.release()

    def _send(self, endpoint: str, notes: list[bytes]) -> None:
        sock = self._socks.get(endpoint)
        if sock is None:
            try:
                sock = self._socket(endpoint)
            except zmq.ZMQError:
                return  # an endpoint zmq refuses (a broken descriptor's): no one to tell
            self._socks[endpoint] = sock
        with contextlib.suppress(zmq.ZMQError):  # a sender gone: nothing to tell
            sock.send(b"".join(notes), zmq.NOBLOCK)

    def _socket(self, endpoint: str) -> zmq.Socket[Any]:
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PUSH)
        sock.linger = 200  # at exit, a moment to hand the last notices over
        try:
            sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)  # never left open: the context's term would wait for it
            raise
        return sock

    def close(self) -> None:
        """Flush, then close the sockets; later notices are dropped."""
        self.flush()
        with self._lock:
            self.closed = True
            for sock in self._socks.values():
                sock.close()
            self._socks.clear()
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None


class ShmReader:
    """A receiver's view of other nodes' segments: mapped once, leased per message.

    Used by the node's own thread only (it decodes events), so its caches take no lock;
    `discard` only queues a notice, and may be called from either thread.
    """

    def __init__(self, releases: Releases) -> None:
        self.releases = releases
        # descriptor tail (segment name, release endpoint) -> (mapping, endpoint)
        self._maps: dict[bytes, tuple[mmap.mmap, str]] = {}
        self._lease_types: dict[int, type[Any]] = {}
        self._next_sweep = 0.0

    def sweep(self) -> None:
        """Forget the mappings of segments their senders removed, at most once per SWEEP_S
        (the node's thread, about to wait). A lease keeps its own mapping alive."""
        if not self._maps or (now := time.monotonic()) < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_S
        from node_sdk.shm_names import SHM_DIR  # imported with the first mapping already

        for tail in list(self._maps):
            name = tail.partition(b"\n")[0].decode()  # checked when it was mapped
            if not os.path.exists(os.path.join(SHM_DIR, name)):
                del self._maps[tail]

    def open_payload(
        self,
        frame: Any,
        extra: Mapping[str, Any],
        decode: Callable[[int, Any, Mapping[str, Any]], Any],
    ) -> Any:
        """A descriptor frame -> the value (`decode` of the inner kind), backed by the segment
        without a copy. The lease is released (and the sender told) when the last view of it
        is gone: at once for a `str` (decoding copies) or an empty payload."""
        kind, number, use, nbytes, tail = parse_descriptor(frame)
        try:
            mapping, endpoint = self._mapping(tail)
            if nbytes > len(mapping):
                raise NodeError(f"shared-memory descriptor of {nbytes} bytes for a smaller "
                                "segment")  # fmt: skip
        except NodeError:
            self.discard(frame)  # no lease will ever release it: its sender gets it back now
            raise
        lease = self._lease_type(nbytes).from_buffer(mapping)
        lease._flow_note = (self.releases, endpoint, number, use, nbytes)
        view = memoryview(lease).cast("B").toreadonly()
        del lease  # the view holds it now
        if kind == _KIND_ARROW_IPC:
            # an IPC stream's offsets are checked once (full validation), then read by the
            # user's code: its sender rewriting the segment in between would move them past
            # the data. Strings, lists and dictionaries are copied out (the lease goes back
            # at once); fixed-width arrays and numpy have no offsets to move.
            data = bytes(view)
            del view
            return decode(kind, data, extra)
        return decode(kind, view, extra)

    def discard(self, frame: Any) -> None:
        """Release a descriptor that will never be read (dropped or refused by the inbox)."""
        try:
            _, number, use, nbytes, tail = parse_descriptor(frame)
        except NodeError:
            return
        endpoint = tail.partition(b"\n")[2].decode(errors="replace")
        if endpoint.startswith("ipc://"):  # a sender on this machine; anything else: no one
            self.releases.note(endpoint, number, use, nbytes)

    def _lease_type(self, nbytes: int) -> type[Any]:
        made = self._lease_types.get(nbytes)
        if made is None:
            import ctypes  # only a node that receives a large payload pays for it

            if len(self._lease_types) >= _LEASE_TYPES_MAX:
                self._lease_types.clear()
            made = type("ShmLease", (ctypes.c_char * nbytes,), {"__del__": _release_lease})
            self._lease_types[nbytes] = made
        return made

    def _mapping(self, tail: bytes) -> tuple[mmap.mmap, str]:
        """The mapping of the segment a descriptor tail names, and its release endpoint."""
        known = self._maps.get(tail)
        if known is not None:
            return known
        from node_sdk.shm import MAX_SEGMENTS, NAME_PREFIX, SHM_DIR

        try:
            name, _, endpoint = tail.decode().partition("\n")
        except UnicodeDecodeError:
            raise NodeError("shared-memory descriptor with a name that is not UTF-8") from None
        if "/" in name or "\0" in name or not name.startswith(NAME_PREFIX):
            raise NodeError(f"shared-memory descriptor names a bad segment {name[:80]!r}")
        if not endpoint.startswith("ipc://"):  # a sender on this machine: never elsewhere
            raise NodeError(f"shared-memory descriptor names a release endpoint {endpoint[:80]!r}")
        try:  # never through a link another user put there
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR | os.O_NOFOLLOW)
        except (OSError, ValueError) as exc:
            raise NodeError(f"shared-memory segment {name[:80]} cannot be opened: {exc}") from None
        try:
            if (owner := os.fstat(fd).st_uid) != os.getuid():  # only a sender of ours made it
                raise NodeError(f"shared-memory segment {name[:80]} belongs to uid {owner}")
            mapping = mmap.mmap(fd, 0)
        except (OSError, ValueError) as exc:
            raise NodeError(f"shared-memory segment {name[:80]} cannot be mapped: {exc}") from None
        finally:
            os.close(fd)
        if len(self._maps) >= MAX_SEGMENTS:
            self._maps.clear()  # leases keep their own mappings alive; the cache only forgets
        known = self._maps[tail] = (mapping, endpoint)
        return known


def _release_lease(lease: Any) -> None:
    """A lease's `__del__`: the last view of a payload is gone; tell its sender."""
    with contextlib.suppress(Exception):  # interpreter shutdown: nothing to do
        releases, endpoint, number, use, nbytes = lease._flow_note
        releases.note(endpoint, number, use, nbytes)
