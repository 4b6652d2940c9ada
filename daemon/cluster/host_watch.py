"""A member's share of `flow topic echo|hz` and `flow top` for the nodes it hosts.

Observers: asked by the coordinator (`observe`), this daemon binds an observer socket here,
which the coordinator then wires the node's output to as a drop_oldest edge (the node is
never slowed: a full edge drops its oldest message). Each message read is reduced to a
bounded sample (daemon/cluster/samples.py) into a queue of QUEUE_BYTES (oldest dropped,
counted), and every TICK_S the queues are relayed in batches within a budget of
BUDGET_PER_S for all observers together, so the link's heartbeats and run messages are
never crowded out. A sample that cannot be sent (the link down) is dropped, counted; none
is kept. An observer the coordinator has not asked for again within LEASE_S is closed.

Usage: asked (`usage`), the CPU and memory of the run's nodes here, measured here.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio
import zmq

from daemon.cluster.host import Host
from daemon.cluster.samples import BATCH_BYTES, pack_batch, reduce, shm_descriptor
from daemon.model.cluster_messages import WATCH_KINDS, Carry
from daemon.model.pids import cpu_seconds, rss_bytes
from daemon.run.runtime import Runtime
from daemon.run.zmq_trio import SocketOwner
from node_sdk import paths
from node_sdk.leases import Releases, ShmReader

log = logging.getLogger(__name__)

LEASE_S: Final = 5.0  # the coordinator asks again every second while its observer lives
MAX_OBSERVERS: Final = 16
QUEUE_BYTES: Final = 512 * 1024  # samples waiting per observer; past it the oldest go
OBSERVER_HWM: Final = 100  # messages the observer socket holds (as a local observer's)
TICK_S: Final = 0.1
BUDGET_PER_S: Final = 256 * 1024  # relayed sample bytes per second, all observers together
# messages an observer reduces to samples per second; past it they are only counted as
# dropped (more could not be relayed within the budget anyway), so a fast topic costs this
# daemon little more than its reads
REDUCE_PER_S: Final = 4000
MAX_USAGE_SAMPLE_S: Final = 2.0
_LEASE: Final = re.compile(r"[0-9a-f]{16}")


@attrs.define(eq=False)
class _Observer:
    """One observer socket here, for one lease of the coordinator's."""

    run_id: str
    lease: str
    endpoint: str
    owner: SocketOwner
    expires: float
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    queue: collections.deque[bytes] = attrs.field(factory=collections.deque)
    queued_bytes: int = 0
    dropped: int = 0
    second: float = 0.0  # the second `reduced` counts in (trio clock)
    reduced: int = 0
    # release notices for payloads in shared memory (never read: their segments go back at
    # once); its own, so its sockets to the senders close with the observer
    shm: ShmReader = attrs.field(factory=lambda: ShmReader(Releases()))


@attrs.define(eq=False)
class HostWatch:
    """The observers and usage of the runs `host` keeps here; `serve` runs it."""

    rt: Runtime
    host: Host
    send: Callable[[Carry], bool]  # the link's own send: False (and dropped) while it is down
    observers: dict[str, _Observer] = attrs.field(factory=dict)
    _cpu: dict[int, tuple[float | None, float]] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    _turn: int = 0  # which observer relays first this tick (fair under the budget)

    def on_carry(self, carry: Carry) -> bool:
        """The link's hook: True when `carry` was one of ours (then handled here)."""
        if carry.kind not in WATCH_KINDS:
            return False
        if self._nursery is None:
            return True
        if carry.kind == "observe":
            self._observe(carry)
        elif carry.kind == "unobserve":
            observer = self.observers.get(carry.ident)
            if observer is not None and observer.run_id == carry.run:
                self._close(observer)
        elif carry.kind == "usage":
            self._nursery.start_soon(self._usage, carry)
        return True

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                while True:
                    await trio.sleep(TICK_S)
                    self._tick()
        finally:
            self._nursery = None

    # ------------------------------------------------------------------ observers

    def _observe(self, carry: Carry) -> None:
        """Open (or keep) the observer of a lease and answer its endpoint ("" refuses)."""
        lease, known = carry.ident, self.observers.get(carry.ident)
        if known is not None and known.run_id == carry.run:
            known.expires = trio.current_time() + LEASE_S
            self.send(Carry(carry.run, "observe", known.endpoint, lease))
            return
        full = len(self.observers) >= MAX_OBSERVERS
        if known is not None or _LEASE.fullmatch(lease) is None or (
            carry.run not in self.host.runs or full
        ):
            log.warning("cluster: run %s: refused an observer (%d open)", carry.run[:36],
                        len(self.observers))  # fmt: skip
            self.send(Carry(carry.run, "observe", "", lease))
            return
        endpoint = paths.observer_endpoint(self.rt.socket_dir, os.getpid(), lease[:6])
        sock = self.rt.context.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, OBSERVER_HWM)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            log.warning("cluster: run %s: observer not bound: %s", carry.run, exc)
            self.send(Carry(carry.run, "observe", "", lease))
            return
        observer = _Observer(carry.run, lease, endpoint, SocketOwner(sock, name="observer"),
                             trio.current_time() + LEASE_S)  # fmt: skip
        self.observers[lease] = observer
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, observer)
        log.info("cluster: run %s: observer %s open", carry.run, lease)
        self.send(Carry(carry.run, "observe", endpoint, lease))

    async def _pump(self, observer: _Observer) -> None:
        try:
            with observer.scope:
                await observer.owner.serve(lambda frames: self._take(observer, frames))
        finally:
            observer.owner.socket.close(linger=0)
            _unlink(observer.endpoint)
            observer.shm.releases.close()  # its last notices get at most 0.2 s (their linger)

    def _take(self, observer: _Observer, frames: list[bytes]) -> None:
        now = trio.current_time()
        if now - observer.second >= 1.0:
            observer.second, observer.reduced = now, 0
        observer.reduced += 1
        if observer.reduced > REDUCE_PER_S:
            observer.dropped += 1
            descriptor = shm_descriptor(frames)
            if descriptor is not None:  # its segment goes back to its sender at once
                observer.shm.discard(descriptor)
                observer.shm.releases.flush()
            return
        sample, descriptor = reduce(frames, observer.dropped)
        if descriptor is not None:  # the segment goes back to its sender at once
            observer.shm.discard(descriptor)
            observer.shm.releases.flush()
        if sample is not None and observer.queued_bytes + len(sample) > QUEUE_BYTES:
            while observer.queue and observer.queued_bytes + len(sample) > QUEUE_BYTES:
                observer.queued_bytes -= len(observer.queue.popleft())  # the oldest go
                observer.dropped += 1
            sample, _ = reduce(frames, observer.dropped)  # its count has them too
        if sample is None:
            observer.dropped += 1
            return
        observer.queue.append(sample)
        observer.queued_bytes += len(sample)

    def _close(self, observer: _Observer) -> None:
        if self.observers.get(observer.lease) is observer:
            del self.observers[observer.lease]
            observer.scope.cancel()
            log.info("cluster: run %s: observer %s closed", observer.run_id, observer.lease)

    def _tick(self) -> None:
        """Close what is no longer asked for; relay what waits, within the budget."""
        now = trio.current_time()
        for observer in list(self.observers.values()):
            if observer.expires < now or observer.run_id not in self.host.runs:
                self._close(observer)
        waiting = [o for o in self.observers.values() if o.queue]
        if not waiting:
            return
        self._turn = (self._turn + 1) % len(waiting)
        budget = int(BUDGET_PER_S * TICK_S)
        for observer in waiting[self._turn :] + waiting[: self._turn]:
            batch, size = [], 0
            limit = min(BATCH_BYTES, budget)
            while observer.queue and size + 4 + len(observer.queue[0]) <= limit:
                sample = observer.queue.popleft()
                observer.queued_bytes -= len(sample)
                batch.append(sample)
                size += 4 + len(sample)
            budget -= size
            if batch and not self.send(
                Carry(observer.run_id, "samples", pack_batch(batch), observer.lease)
            ):
                observer.dropped += len(batch)

    # ------------------------------------------------------------------ usage

    async def _usage(self, carry: Carry) -> None:
        """`node cpu% rss` lines of the run's live nodes here (`-`: not known yet)."""
        hosted = self.host.runs.get(carry.run)
        pids = {node: pid for node, (_, pid) in hosted.live.items()} if hosted else {}
        body = carry.body
        sample_s = min(int(body) / 1000, MAX_USAGE_SAMPLE_S) if body.isdigit() and len(
            body) <= 5 else 0.0  # fmt: skip
        if sample_s > 0:
            for pid in pids.values():
                self._cpu[pid] = (cpu_seconds(pid), trio.current_time())
            await trio.sleep(sample_s)
        now, lines = trio.current_time(), []
        for node, pid in pids.items():
            used, before = cpu_seconds(pid), self._cpu.get(pid)
            cpu = "-"
            if used is not None and before and before[0] is not None and now > before[1]:
                cpu = f"{100.0 * (used - before[0]) / (now - before[1]):.1f}"
            self._cpu[pid] = (used, now)
            rss = rss_bytes(pid)
            lines.append(f"{node} {cpu} {'-' if rss is None else rss}")
        live = {pid for run in self.host.runs.values() for _, pid in run.live.values()}
        for gone in set(self._cpu) - live:
            del self._cpu[gone]
        self.send(Carry(carry.run, "usage", "\n".join(lines), carry.ident))


def _unlink(endpoint: str) -> None:
    """The socket file of a closed observer (a quick local unlink)."""
    with contextlib.suppress(OSError):
        Path(endpoint.removeprefix("ipc://")).unlink()
