"""The cluster requests: `flow cluster token|status|remove` (docs/cluster.md)."""

from __future__ import annotations

from daemon.cluster.coordinator import Coordinator
from daemon.cluster.member import Member
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest
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


CLUSTER_HANDLERS = {
    rq.ClusterToken: token,
    rq.ClusterRevoke: revoke,
    rq.ClusterStatus: status,
    rq.ClusterRemove: remove,
}
