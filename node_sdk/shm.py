"""Shared-memory payloads: the sender's segment pool and the receiver's zero-copy leases.

A sender writes a large payload into a segment of its own pool (files under /dev/shm named
`flow-<run12>-<node8>g<generation>-<n>`, so the daemon can remove a run's segments by
prefix however the run ends) and sends a descriptor frame (kind 6) instead of the bytes.
A receiver maps the segment once and hands out read-only views backed by a *lease*; when
the last view of a lease is gone, a release notice (`<seg, use>`) goes back to the
sender's release PULL. Each receiver's descriptor carries a `use` token of its own, so the
pool knows which receivers still hold a segment: one whose every receiver released it
goes back to the free list, and so do the ones only a receiver gone for good still holds
(`Pool.forget`); nothing here ever blocks: a pool at its cap, or a /dev/shm that is full, makes the
sender fall back to sending the bytes inline (`acquire` returns None).

Python 3.11 has no `__buffer__`, so a lease is a ctypes array laid over the receiver's
mapping (`from_buffer`): memoryviews, numpy arrays and pyarrow buffers made from it keep it
alive, and its `__del__` queues the notice. A leaf: no module-level state (the release
queue belongs to the node and is handed in), and nothing of the SDK's imported but errors.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import random
import select
import time
from typing import Any, Final

import zmq

from node_sdk import paths
from node_sdk.log_rate import LogRate
from node_sdk.shm_format import DESCRIPTOR as DESCRIPTOR
from node_sdk.shm_format import DESCRIPTOR_MAGIC as DESCRIPTOR_MAGIC
from node_sdk.shm_format import MAX_NOTICES as MAX_NOTICES
from node_sdk.shm_format import RELEASE as RELEASE
from node_sdk.shm_format import parse_descriptor as parse_descriptor
from node_sdk.shm_names import NAME_PREFIX as NAME_PREFIX
from node_sdk.shm_names import SHM_DIR as SHM_DIR
from node_sdk.shm_names import remove_older_generations
from node_sdk.shm_names import run_prefix as run_prefix
from node_sdk.shm_names import sender_tag as sender_tag

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES: Final = 1 << 30  # mapped by one sender's pool, in flight or free
MAX_SEGMENTS: Final = 256
CLOSE_WAIT_S: Final = 0.5  # close waits this long for receivers to release in-flight segments
CREATE_TRIES: Final = 16  # names in a row found taken (another process's) before giving up
WARN_S: Final = 10.0  # a segment that cannot be made is said at most this often
# A size class grows freely up to its working set (a sender may run that far ahead of its
# receivers); past it, a send with none free first waits for a release for at most what
# making a segment costs (measured per class), so a burst reuses instead of growing. The
# set is WORKING_SET segments, or as many as WORKING_SET_BYTES hold, at most
# MAX_WORKING_SET: releases come back in batches, and a 1 MiB burst ran 17-30% faster with
# 8 segments than with 4 (docs/performance.md); a 64 MiB class keeps 4.
WORKING_SET: Final = 4
MAX_WORKING_SET: Final = 8
WORKING_SET_BYTES: Final = 8 << 20
MIN_WAIT_S: Final = 20e-6
MAX_WAIT_S: Final = 0.005
# Past the working set a class grows while its receivers lag; once they caught up, a segment
# of that excess left free while others went round this long is removed, one per acquire.
TRIM_IDLE_S: Final = 1.0
# A class whose segments pass this many bytes in all reads the notices at each send, so the
# segment let go of last (on top) is taken next, still in the caches: read only once the
# list ran dry, every segment went round, each copy into one the caches had lost (a 1 MiB
# burst's sender: up to a third more CPU), and none stayed idle. A smaller class skips it.
EAGER_BYTES: Final = 1 << 20
SELECT_FD_LIMIT: Final = 1024  # FD_SETSIZE: select refuses a higher descriptor
_EVENTS: Final = int(zmq.EVENTS)  # plain ints: an enum member costs a conversion per call
_POLLIN: Final = int(zmq.POLLIN)


def working_set(size: int) -> int:
    """Segments of a size class made without waiting for a release first."""
    return max(WORKING_SET, min(MAX_WORKING_SET, WORKING_SET_BYTES // size))


def _size_class(nbytes: int, minimum: int) -> int:
    size = max(minimum, 4096)
    while size < nbytes:
        size <<= 1
    return size


class Segment:
    """One shared-memory file of a sender's pool, mapped read-write."""

    __slots__ = ("freed", "holders", "map", "name", "number", "out", "size", "tail")

    def __init__(
        self, number: int, name: str, size: int, mapping: mmap.mmap, endpoint: str
    ) -> None:
        self.number = number
        self.name = name
        self.size = size
        self.map = mapping
        self.tail = f"{name}\n{endpoint}".encode()  # the descriptor's constant part
        # use token -> receiver node, for each receiver that has not released it yet; a
        # notice of a token not here (an older use, a repeat, a forgotten one) is ignored
        self.holders: dict[int, str] = {}
        self.out = False  # acquired and not published yet: the sender is writing or sending it
        self.freed = 0.0  # when it last went back to the free list (time.monotonic)


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
        self._segments: dict[int, Segment] = {}  # by number (never reused: names are unique)
        self._numbers = 0  # segments ever made: the next one's number
        self._free: dict[int, list[Segment]] = {}
        self._made: dict[int, int] = {}  # segments of each size class
        self._cost: dict[int, float] = {}  # seconds to make one of each size class (EWMA)
        self._pull: zmq.Socket[Any] | None = None
        self._broken = False  # binding failed once: inline from now on
        self._failures = LogRate(WARN_S)  # a full /dev/shm fails every large send
        self.fallbacks = 0  # large payloads sent inline because no segment was available
        # use tokens: seeded here, in the node's own process (a fork server's children
        # share its state), fast (one per receiver per message), seen by no other process
        self._tokens = random.Random(os.urandom(16))

    def acquire(self, nbytes: int) -> Segment | None:
        """A free segment of at least `nbytes`, or None (send inline): never blocks."""
        if self._broken or (self._pull is None and not self._bind()):
            return None
        size = _size_class(nbytes, self._threshold)
        free = self._free.get(size)
        if not free or self._made[size] * size > EAGER_BYTES:
            self.poll_releases()
            free = self._free.get(size)
            if not free and self._made.get(size, 0) >= working_set(size):
                free = self._await_release(size)
        if free:
            segment = free.pop()
            # in the order they came back: the first was not taken while the top went round
            # that long (wall time would, after a pause, remove what the next burst needs)
            if (free and self._made[size] > working_set(size)
                    and segment.freed - free[0].freed >= TRIM_IDLE_S):  # fmt: skip
                self._remove(free.pop(0))
        else:
            made = self._create(size)
            if made is None:
                self.fallbacks += 1
                return None
            segment = made
        segment.out = True
        return segment

    def hold(self, segment: Segment, receiver: str) -> int:
        """A use token of `segment` for one message to `receiver` (a node id): it holds the
        segment until a notice of that token comes back, or it is forgotten."""
        # random, not counted: any process of this user can reach the release socket, and
        # a forged notice must guess a token it never saw (a counter is guessed in a few
        # hundred tries, and the sender then reuses a segment a receiver still reads)
        token = self._tokens.getrandbits(32)
        while token in segment.holders:
            token = self._tokens.getrandbits(32)
        segment.holders[token] = receiver
        return token

    def unhold(self, segment: Segment, token: int) -> None:
        """The message of `token` was not sent after all (dropped, or a send failed)."""
        segment.holders.pop(token, None)

    def descriptor(self, segment: Segment, kind: int, nbytes: int, token: int) -> bytes:
        """The payload frame that stands for `nbytes` of `segment` (inner `kind`), for the
        receiver of `token`."""
        head = DESCRIPTOR.pack(DESCRIPTOR_MAGIC, kind, segment.number, token, nbytes)
        return head + segment.tail

    def publish(self, segment: Segment) -> None:
        """`segment` went to its holders; with none it is free again now."""
        segment.out = False
        if not segment.holders:
            self._free_up(segment)

    def _free_up(self, segment: Segment) -> None:
        """`segment` is free again: on top of its class's list, the next one taken (the
        one most likely still in the caches)."""
        segment.freed = time.monotonic()
        self._free.setdefault(segment.size, []).append(segment)

    def give_back(self, segment: Segment) -> None:
        """An acquired segment that was never sent."""
        segment.holders.clear()
        self.publish(segment)

    def forget(self, receiver: str) -> int:
        """`receiver` (a node id) is gone for good: it will release nothing more. The
        segments only it still held are free again, and past the working set of their size
        class they are unlinked and unmapped (a receiver that died with the pool at its cap
        must not leave it all mapped); how many segments it held alone."""
        self.poll_releases()  # notices it sent before it went are honoured first
        freed = 0
        for segment in self._segments.values():
            holders = segment.holders
            if receiver not in holders.values():
                continue
            for token in [t for t, node in holders.items() if node == receiver]:
                del holders[token]
            if not holders and not segment.out:
                self._free_up(segment)
                freed += 1
        for size, free in self._free.items():
            while len(free) > working_set(size):
                self._remove(free.pop(0))
        return freed

    def _remove(self, segment: Segment) -> None:
        """Unlink and unmap a free segment for good."""
        del self._segments[segment.number]
        self._mapped -= segment.size
        self._made[segment.size] -= 1
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(SHM_DIR, segment.name))
        with contextlib.suppress(BufferError, ValueError):
            segment.map.close()  # a user's send buffer may still export it

    def poll_releases(self) -> int:
        """Take every release notice that arrived; how many segments became free."""
        pull: Any = self._pull  # its EVENTS an int
        if pull is None:
            return 0
        freed = 0
        segments = self._segments
        # a look at the socket's events costs half of a `recv` that raises Again: at every
        # large send, most often with nothing there
        while pull.get(_EVENTS) & _POLLIN:
            try:
                note = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not note or len(note) % RELEASE.size:
                continue
            for number, use in RELEASE.iter_unpack(note):
                segment = segments.get(number)
                if segment is None or segment.holders.pop(use, None) is None:
                    continue  # a notice of an older use, a repeat, or a forgotten holder
                if not segment.holders and not segment.out:
                    self._free_up(segment)
                    freed += 1
        return freed

    def _await_release(self, size: int) -> list[Segment] | None:
        """Wait for a segment of `size` to come back, at most what making one costs.

        In a burst the sender outruns its receivers; a new segment costs the allocation
        and first-touch faults of its pages (about 25x a reused one's copy), so waiting
        that long for a release is never slower than making one, and keeps the pool at the
        receivers' pace. zmq's own poll counts in milliseconds: select on its descriptor.
        """
        pull = self._pull
        assert pull is not None
        deadline = time.perf_counter() + min(max(self._cost.get(size, 0.0), MIN_WAIT_S), MAX_WAIT_S)
        while True:
            events: Any = pull.get(_EVENTS)  # an int option
            if events & _POLLIN:
                self.poll_releases()
                free = self._free.get(size)
                if free:
                    return free
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            fd = pull.FD
            if fd < SELECT_FD_LIMIT:
                select.select([fd], [], [], left)
            else:  # select cannot watch it: zmq's own poll, in whole milliseconds
                pull.poll(math.ceil(left * 1000), zmq.POLLIN)

    @property
    def in_flight(self) -> int:
        return sum(1 for s in self._segments.values() if s.holders)

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
        for segment in self._segments.values():
            if not segment.holders:
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
        pull.setsockopt(zmq.MAXMSGSIZE, MAX_NOTICES * RELEASE.size)  # but on their frames
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
        started = time.perf_counter()
        for _ in range(CREATE_TRIES):  # a name another process took: the next number's
            number = self._numbers
            name = f"{self.prefix}{number}"
            path = os.path.join(SHM_DIR, name)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                break
            except FileExistsError:
                self._numbers += 1
            except OSError as exc:
                self._warn("cannot create %s: %s", path, exc)
                return None
        else:
            self._warn("cannot create %s: %d names in a row taken", path, CREATE_TRIES)
            return None
        try:
            # reserve the pages now: a full /dev/shm is an error here, not a SIGBUS later
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size)
        except OSError as exc:
            os.unlink(path)
            self._warn("cannot allocate %d bytes in %s: %s", size, path, exc)
            return None
        finally:
            os.close(fd)
        segment = Segment(number, name, size, mapping, self.endpoint)
        self._segments[number] = segment
        self._numbers += 1
        self._mapped += size
        self._made[size] = self._made.get(size, 0) + 1
        # its pages are touched by the first write, not here: count that in (about 2x)
        spent = 2 * (time.perf_counter() - started)
        cost = self._cost.get(size)
        self._cost[size] = spent if cost is None else 0.75 * cost + 0.25 * spent
        return segment

    def _warn(self, what: str, *args: object) -> None:
        """A segment not made (the payload goes inline): said once per WARN_S, counted."""
        count = self._failures.tick()
        if count == 1:
            log.warning("shared memory: " + what, *args)
        elif count:
            log.warning("shared memory: " + what + " (%d times since the last line)", *args,
                        count)  # fmt: skip


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
    remove_older_generations(run_id, tag, generation)
    return Pool(ctx, run_id, tag, f"ipc://{folder}/r{tag}", threshold)
