"""Topic inspection (SPEC 8): observers attach to an output as drop_oldest receivers.

An observer (`flow topic echo|hz`) binds its own socket and takes a lease on a topic: the
sender gets a live `wire` edge to it, and loses it (`unwire`) when the lease is dropped or
not renewed in time. Observers are drop_oldest: a slow one never slows the sender. A node
on another machine is wired to an observer its machine opens for the lease, which relays
what it sees to the CLI's socket here (daemon/cluster/remote_watch.py).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING

import attrs
import trio

from daemon.cluster.placing import ClusterPlacer
from daemon.cluster.remote_watch import RemoteWatch
from daemon.model import pids
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest, no_port
from node_sdk import paths
from node_sdk.config import Edge

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime
    from daemon.run.supervisor import Run

log = logging.getLogger(__name__)

LEASE_S = 5.0
OBSERVER_QUEUE = 100
MAX_LEASES = 64


@attrs.define(eq=False)
class Lease:
    """One observer's hold on one topic."""

    run_id: str
    endpoint: str  # the CLI's observer socket
    expires: float
    machine: str | None = None  # the node's, when it runs on a member
    wired: str = ""  # what the node is wired to, when not `endpoint`: the member's observer


def _topic(run: Run, text: str) -> tuple[str, str]:
    node, sep, output = text.partition("/")
    slot = run.slots.get(node)
    if not sep or slot is None or node in run.removed:
        raise BadRequest(f"no topic {text!r} in run {run.name or run.id}: expected NODE/OUTPUT")
    if output not in slot.spec.outputs:
        raise no_port(node, "output", output, list(slot.spec.outputs))
    return node, output


def _watch(rt: Runtime) -> RemoteWatch | None:
    return rt.placer.watch if isinstance(rt.placer, ClusterPlacer) else None


def _remote(rt: Runtime, run: Run, node: str) -> tuple[RemoteWatch, str] | None:
    """How to observe `node` when it runs on a member: the watch, and its machine."""
    watch = _watch(rt)
    if run.placed is None or watch is None or not run.placed.is_remote(node):
        return None
    return watch, run.placed.placement.machine_of[node]


async def topic_list(rt: Runtime, req: rq.TopicList) -> rp.TopicListReply:
    run = rt.live_run(req.run)
    topics = []
    # a node `flow node remove`d is out of the graph: neither a topic nor a receiver
    present = [slot for slot in run.slots.values() if slot.id not in run.removed]
    for slot in present:
        rates = (slot.current_stats or {}).get("rates") or {}
        for output in slot.spec.outputs:
            receivers = [
                f"{other.id}/{spec.id}"
                for other in present
                for spec in other.spec.inputs
                if getattr(spec.source, "node", None) == slot.id
                and getattr(spec.source, "output", None) == output
            ]
            rate = rates.get(f"out:{output}")
            topics.append(
                rp.Topic(topic=f"{slot.id}/{output}", receivers=receivers,
                         rate=None if rate is None else float(rate))
            )  # fmt: skip
    return rp.TopicListReply(run=run.id, topics=topics)


async def topic_subscribe(rt: Runtime, req: rq.TopicSubscribe) -> rp.LeaseReply:
    run = rt.live_run(req.run)
    node, output = _topic(run, req.topic)
    endpoint = req.endpoint
    if paths.observer_socket(rt.socket_dir, endpoint) is None:
        # never a path elsewhere, another socket of ours, or `..`: the lease unlinks it
        raise BadRequest(f"an observer endpoint is ipc://{rt.socket_dir}/obs-<pid>-<hex6>")
    if len(rt.leases) >= MAX_LEASES:
        raise BadRequest(f"too many observers ({MAX_LEASES}); close some first")
    lease = secrets.token_hex(8)
    held = Lease(run.id, endpoint, time.monotonic() + LEASE_S)
    remote = _remote(rt, run, node)
    if remote is not None:  # the node's own machine observes it and relays the samples
        watch, held.machine = remote
        held.wired = await watch.observe(run.id, held.machine, lease, endpoint)
    rt.leases[lease] = held
    edge = Edge(held.wired or endpoint, f"observer-{lease[:6]}", "observe", "drop_oldest",
                OBSERVER_QUEUE)  # fmt: skip
    run.add_live_edge(node, output, edge)
    log.info("run %s: observer %s on %s/%s", run.id, lease, node, output)
    return rp.LeaseReply(lease=lease, lease_s=LEASE_S, run=run.id)


async def topic_renew(rt: Runtime, req: rq.TopicRenew) -> rp.Empty:
    lease = rt.leases.get(req.lease)
    if lease is None:
        raise BadRequest("no such observer lease (it expired?)")
    lease.expires = time.monotonic() + LEASE_S
    watch = _watch(rt)
    if lease.machine is not None and watch is not None:
        watch.renew(req.lease)
    return rp.Empty()


async def topic_unsubscribe(rt: Runtime, req: rq.TopicUnsubscribe) -> rp.Empty:
    drop_lease(rt, req.lease)
    return rp.Empty()


def drop_lease(rt: Runtime, lease_id: str) -> None:
    lease = rt.leases.pop(lease_id, None)
    if lease is None:
        return
    if lease.run_id in rt.runs:
        rt.runs[lease.run_id].remove_live_edge(lease.wired or lease.endpoint)
    watch = _watch(rt)
    if lease.machine is not None and watch is not None:
        watch.close(lease_id)
    # an observer killed before it could clean up leaves its socket file: ours to remove
    # (subscribe only takes observer endpoints directly inside the daemon's socket folder)
    path = paths.observer_socket(rt.socket_dir, lease.endpoint)
    with contextlib.suppress(OSError):
        if path is not None and path.is_socket():
            path.unlink()


def sweep_abandoned_observers(rt: Runtime) -> None:
    """Remove the socket files of observers that died before taking a lease.

    An observer binds its socket first and subscribes after; killed in between, it leaves a
    file that no lease will ever unlink. Its pid is in the name: once that process is gone
    (and no lease names the file), nobody will use it.
    """
    leased = {paths.observer_socket(rt.socket_dir, lease.endpoint) for lease in rt.leases.values()}
    for path, pid in paths.observer_sockets(rt.socket_dir).items():
        if path not in leased and not pids.alive(pid):
            with contextlib.suppress(OSError):
                if path.is_socket():
                    path.unlink()
                    log.info("removed the socket of observer pid %d, gone before subscribing", pid)


async def expire_leases(rt: Runtime) -> None:
    """Observers that stopped renewing (killed, gone) are unwired: bounded by LEASE_S."""
    while True:
        now = time.monotonic()
        for lease_id, lease in list(rt.leases.items()):
            if lease.expires < now or lease.run_id not in rt.runs:
                log.info("observer lease %s expired", lease_id)
                drop_lease(rt, lease_id)
        sweep_abandoned_observers(rt)
        await trio.sleep(1.0)


TOPIC_HANDLERS = {
    rq.TopicList: topic_list,
    rq.TopicSubscribe: topic_subscribe,
    rq.TopicRenew: topic_renew,
    rq.TopicUnsubscribe: topic_unsubscribe,
}
