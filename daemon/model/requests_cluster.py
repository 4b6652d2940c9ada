"""Control requests about the cluster: join tokens, its machines, link probes."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Empty
from daemon.model.replies_cluster import ClusterStatusReply, LinkProbeReply, TokenReply
from daemon.model.requests_base import Name, Request, Seconds, YamlText


@attrs.frozen
class ClusterToken(Request[TokenReply]):
    TYPE = "cluster_token"
    REPLY = TokenReply
    DOC = "a coordinator's one-line join token, admitting machines until revoked or ttl"
    ttl: Seconds | None = None


@attrs.frozen
class ClusterRevoke(Request[Empty]):
    TYPE = "cluster_revoke"
    DOC = "revoke a join token (its id or its text): its admission key is refused"
    token: str


@attrs.frozen
class ClusterStatus(Request[ClusterStatusReply]):
    TYPE = "cluster_status"
    REPLY = ClusterStatusReply
    DOC = "the machines of the cluster (coordinator), or the link to the coordinator (member)"


@attrs.frozen
class ClusterRemove(Request[Empty]):
    TYPE = "cluster_remove"
    DOC = "forget an admitted machine: its key is refused from now on, a connected one leaves"
    name: Name


@attrs.frozen
class ClusterProbe(Request[LinkProbeReply]):
    TYPE = "cluster_probe"
    REPLY = LinkProbeReply
    DOC = (
        "probe the links between machines, both ways, small and large (path and text: "
        "a dataflow whose placed edges to probe; none: every pair of connected machines)"
    )
    path: str | None = None
    text: YamlText | None = None
    large: int = 8 << 20  # bytes of the large message (8 B for the small one)
    timeout: Seconds = Seconds(10.0)  # for each message's acknowledgement
