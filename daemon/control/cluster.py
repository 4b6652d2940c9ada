"""The cluster requests: `flow cluster token|status|remove` (docs/cluster.md)."""

from __future__ import annotations

from daemon.cluster.coordinator import CONNECTED, Coordinator
from daemon.cluster.doctor import LinkDoctor
from daemon.cluster.member import Member
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.cluster_probe import (
    MAX_LARGE_BYTES,
    MAX_TIMEOUT_S,
    SMALL_BYTES,
    dataflow_links,
    every_pair,
)
from daemon.model.errors import BadRequest
from daemon.model.routing import place_nodes
from daemon.run.runtime import Runtime


def _coordinator(rt: Runtime, what: str) -> Coordinator:
    if isinstance(rt.cluster, Coordinator):
        return rt.cluster
    if isinstance(rt.cluster, Member):
        raise BadRequest(f"{what} is done on the coordinator "
                         f"({rt.cluster.membership.coordinator_address}), not on a member")
    raise BadRequest(f"{what}: this daemon coordinates no cluster (flow up --machine NAME "
                     "--listen tcp://ADDR:PORT)")  # fmt: skip


async def token(rt: Runtime, req: rq.ClusterToken) -> rp.TokenReply:
    return _coordinator(rt, "a join token").new_token(req.ttl)


async def revoke(rt: Runtime, req: rq.ClusterRevoke) -> rp.Empty:
    _coordinator(rt, "revoking a token").revoke(req.token.strip())
    return rp.Empty()


async def status(rt: Runtime, req: rq.ClusterStatus) -> rp.ClusterStatusReply:
    if isinstance(rt.cluster, Coordinator | Member):
        return rt.cluster.status()
    return rp.ClusterStatusReply(role="none", machine=None, coordinator=None,
                                 coordinator_address=None, link=None, link_age_s=None,
                                 machines=[])  # fmt: skip


async def remove(rt: Runtime, req: rq.ClusterRemove) -> rp.Empty:
    _coordinator(rt, "removing a machine").remove(req.name)
    return rp.Empty()


async def probe(rt: Runtime, req: rq.ClusterProbe) -> rp.LinkProbeReply:
    """`flow doctor --cluster`: the links a dataflow's placement would use, or every pair
    of connected machines, probed both ways (daemon/cluster/doctor.py)."""
    coordinator = _coordinator(rt, "probing the links between machines")
    if not SMALL_BYTES <= req.large <= MAX_LARGE_BYTES:
        raise BadRequest(f"large {req.large} bytes: expected {SMALL_BYTES} to "
                         f"{MAX_LARGE_BYTES} (64 MiB, a tcp:// input's largest message)")
    if not 0 < req.timeout <= MAX_TIMEOUT_S:
        raise BadRequest(f"timeout {req.timeout:g} s: expected more than 0 and at most "
                         f"{MAX_TIMEOUT_S:g}")  # fmt: skip
    if req.path is None and req.text is not None:  # not every pair: the client meant a file
        raise BadRequest("a dataflow's text needs its path")
    if req.path is not None:
        if req.text is None:
            raise BadRequest("a dataflow's path needs its text")
        dataflow = await rt.load(req.path, req.text)  # DataflowInvalid, as `flow start`
        links = dataflow_links(dataflow, place_nodes(dataflow, coordinator.name,
                                                     coordinator.peers))  # fmt: skip
    else:
        up = [p.name for p in coordinator.peers.values() if p.state == CONNECTED]
        links = every_pair([coordinator.name, *up])
    rows = await LinkDoctor(coordinator, rt.home).probe(links, req.large, req.timeout)
    return rp.LinkProbeReply(small_bytes=SMALL_BYTES, large_bytes=req.large, links=rows)


CLUSTER_HANDLERS = {
    rq.ClusterToken: token,
    rq.ClusterRevoke: revoke,
    rq.ClusterStatus: status,
    rq.ClusterRemove: remove,
    rq.ClusterProbe: probe,
}
