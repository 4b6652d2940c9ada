"""Every control request type, one frozen class each, and the registry of them by name.

A class's `TYPE` is its name on the wire and `REPLY` the class of its reply body; the
daemon's handlers (`daemon.control.registry`) are keyed by these classes, and
docs/protocol.md's request table is generated from `REQUESTS`, so the list of request
types is written exactly once: here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, NewType, TypeVar

import attrs

from daemon.model import replies as rp

# Bounds of the fields (SPEC 10: every input is bounded).
MAX_STRING_CHARS = 4096  # run refs, node ids, paths, endpoints, leases
MAX_NAME_CHARS = 256  # run names, env keys
MAX_TEXT_CHARS = 1 << 20  # a YAML file's text (descriptor.MAX_YAML_BYTES bounds its bytes)
MAX_ENV_ENTRIES = 1024
MAX_ENV_VALUE_CHARS = 64 * 1024
MAX_PARAM_CHARS = 64 * 1024  # daemon.model.params bounds its bytes
MAX_SECONDS = 31 * 86400.0  # graces, timeouts, samples, a join token's ttl (30 days at most)

Seconds = NewType("Seconds", float)
"""A non-negative duration in seconds, at most MAX_SECONDS."""
Name = NewType("Name", str)
"""A short string: at most MAX_NAME_CHARS."""
YamlText = NewType("YamlText", str)
"""A YAML document's text: at most MAX_TEXT_CHARS."""
Env = NewType("Env", dict[str, str])
"""Environment variables: at most MAX_ENV_ENTRIES, strings to strings."""


R = TypeVar("R")


@attrs.frozen
class Request(Generic[R]):
    """Base of every request body; `TYPE` and `REPLY` (the class `R`) are set by each
    subclass, so a client's `call(Stop(...))` is typed as returning a `RunReply`."""

    TYPE: ClassVar[str] = ""
    REPLY: ClassVar[type[Any]] = rp.Empty
    HOOK: ClassVar[bool] = False  # a test hook, accepted only with FLOW_TEST_HOOKS=1
    DOC: ClassVar[str] = ""


@attrs.frozen
class Ping(Request[rp.PingReply]):
    TYPE = "ping"
    REPLY = rp.PingReply
    DOC = "is the daemon there: its pid, version and home"


@attrs.frozen
class Status(Request[rp.StatusReply]):
    TYPE = "status"
    REPLY = rp.StatusReply
    DOC = "the daemon's uptime, active runs and what is degraded"


@attrs.frozen
class Start(Request[rp.RunReply]):
    TYPE = "start"
    REPLY = rp.RunReply
    DOC = "validate and start a dataflow (path: the YAML's absolute path, text: its text)"
    path: str
    text: YamlText
    name: Name | None = None
    env: Env = attrs.field(factory=lambda: Env({}))
    record: str | None = None  # an absolute path: record every output there (MCAP)


@attrs.frozen
class Stop(Request[rp.RunReply]):
    TYPE = "stop"
    REPLY = rp.RunReply
    DOC = "stop a run: STOP, then SIGTERM after the grace, then SIGKILL (grace null: 10 s)"
    run: str
    grace: Seconds | None = None
    force: bool = False


@attrs.frozen
class StopAll(Request[rp.RunsReply]):
    TYPE = "stop_all"
    REPLY = rp.RunsReply
    DOC = "stop every active run"
    grace: Seconds | None = None
    force: bool = False


@attrs.frozen
class Restart(Request[rp.RunReply]):
    TYPE = "restart"
    REPLY = rp.RunReply
    DOC = (
        "stop a run if it is active and start a new run of its file; text: the file as it is "
        "now (validated before anything stops), or null for the copy stored at its start; "
        "record: an absolute path the new run is recorded into (as `start`'s)"
    )
    run: str
    text: YamlText | None = None
    grace: Seconds | None = None
    record: str | None = None


@attrs.frozen
class List(Request[rp.RunsReply]):
    TYPE = "list"
    REPLY = rp.RunsReply
    DOC = "the active runs, or every run with all"
    all: bool = False


@attrs.frozen
class Logs(Request[rp.LogsReply]):
    TYPE = "logs"
    REPLY = rp.LogsReply
    DOC = ("a run's log files, per node (the CLI reads them itself); follow: a follower asks, "
           "so other machines' logs are forwarded into their copies (asked again within 10 s)")
    run: str
    node: str | None = None
    # a follower asks (again): the copies of remote nodes' logs are kept growing meanwhile
    follow: bool = False


@attrs.frozen
class Wait(Request[rp.WaitReply]):
    TYPE = "wait"
    REPLY = rp.WaitReply
    DOC = "returns when the run has ended or after timeout seconds (at most 60)"
    run: str
    timeout: Seconds = Seconds(0.0)


@attrs.frozen
class Shutdown(Request[rp.Empty]):
    TYPE = "shutdown"
    DOC = "stop every run (marked stopped) and exit the daemon"
    grace: Seconds | None = None


@attrs.frozen
class NodeList(Request[rp.NodeListReply]):
    TYPE = "node_list"
    REPLY = rp.NodeListReply
    DOC = "every node of a live run, in detail"
    run: str


@attrs.frozen
class NodeInfo(Request[rp.NodeReply]):
    TYPE = "node_info"
    REPLY = rp.NodeReply
    DOC = "one node in detail: wiring, queues, drops, rates"
    run: str
    node: str


@attrs.frozen
class NodeStop(Request[rp.NodeReply]):
    TYPE = "node_stop"
    REPLY = rp.NodeReply
    DOC = "stop one node (STOP, grace, SIGTERM, SIGKILL)"
    run: str
    node: str
    grace: Seconds | None = None


@attrs.frozen
class NodeRestart(Request[rp.NodeReply]):
    TYPE = "node_restart"
    REPLY = rp.NodeReply
    DOC = "restart one node in its slot; replies with the new generation, once spawned"
    run: str
    node: str
    grace: Seconds | None = None


@attrs.frozen
class NodeAdd(Request[rp.NodeIdReply]):
    TYPE = "node_add"
    REPLY = rp.NodeIdReply
    DOC = "add one node to a live run (path: the snippet's absolute path, text: its YAML)"
    run: str
    path: str
    text: YamlText


@attrs.frozen
class NodeRemove(Request[rp.NodeIdReply]):
    TYPE = "node_remove"
    REPLY = rp.NodeIdReply
    DOC = "stop a node and take it out of the graph"
    run: str
    node: str


@attrs.frozen
class NodeConnect(Request[rp.EdgeReply]):
    TYPE = "node_connect"
    REPLY = rp.EdgeReply
    DOC = "map source (node/output) to target (node/input) in a live run"
    run: str
    source: str
    target: str


@attrs.frozen
class NodeDisconnect(Request[rp.EdgeReply]):
    TYPE = "node_disconnect"
    REPLY = rp.EdgeReply
    DOC = "remove the mapping source -> target"
    run: str
    source: str
    target: str


@attrs.frozen
class ParamList(Request[rp.ParamsReply]):
    TYPE = "param_list"
    REPLY = rp.ParamsReply
    DOC = "a node's parameters now: its YAML `params:`, then every change (JSON texts)"
    run: str
    node: str


@attrs.frozen
class ParamSet(Request[rp.ParamsReply]):
    TYPE = "param_set"
    REPLY = rp.ParamsReply
    DOC = (
        "set (value: JSON text) or delete (value null) one parameter of a running node; "
        "stored only once the node took it within timeout (null: 5 s)"
    )
    run: str
    node: str
    key: str
    value: rp.ParamText | None
    timeout: Seconds | None = None


@attrs.frozen
class TopicList(Request[rp.TopicListReply]):
    TYPE = "topic_list"
    REPLY = rp.TopicListReply
    DOC = "every output of a live run, with its receivers and rate"
    run: str


@attrs.frozen
class TopicSubscribe(Request[rp.LeaseReply]):
    TYPE = "topic_subscribe"
    REPLY = rp.LeaseReply
    DOC = "wire an observer's socket (inside the daemon's socket folder) to node/output"
    run: str
    topic: str
    endpoint: str


@attrs.frozen
class TopicRenew(Request[rp.Empty]):
    TYPE = "topic_renew"
    DOC = "keep an observer's lease (it expires after lease_s without a renewal)"
    lease: str


@attrs.frozen
class TopicUnsubscribe(Request[rp.Empty]):
    TYPE = "topic_unsubscribe"
    DOC = "drop an observer's lease and unwire it"
    lease: str


@attrs.frozen
class TopicInfo(Request[rp.TopicInfoReply]):
    TYPE = "topic_info"
    REPLY = rp.TopicInfoReply
    DOC = "one output of a live run: its node, counts, rate, receivers and their queues"
    run: str
    topic: str


@attrs.frozen
class TopicPublish(Request[rp.PublishTarget]):
    TYPE = "topic_publish"
    REPLY = rp.PublishTarget
    DOC = "where `flow topic pub` sends messages into node/input of a live run"
    run: str
    target: str


@attrs.frozen
class Top(Request[rp.TopReply]):
    TYPE = "top"
    REPLY = rp.TopReply
    DOC = "CPU, memory, rates and drops of every node; CPU over sample_s (at most 2 s)"
    sample_s: Seconds = Seconds(0.0)


@attrs.frozen
class Prune(Request[rp.RunsReply]):
    TYPE = "prune"
    REPLY = rp.RunsReply
    DOC = (
        "delete ended runs that ended over older_than seconds ago: their records, logs and "
        "dataflow copies; never an active run (dry_run: only list them)"
    )
    older_than: float = 0.0
    dry_run: bool = False


@attrs.frozen
class ClusterToken(Request[rp.TokenReply]):
    TYPE = "cluster_token"
    REPLY = rp.TokenReply
    DOC = "a coordinator's one-line join token, admitting machines until revoked or ttl"
    ttl: Seconds | None = None


@attrs.frozen
class ClusterRevoke(Request[rp.Empty]):
    TYPE = "cluster_revoke"
    DOC = "revoke a join token (its id or its text): its admission key is refused"
    token: str


@attrs.frozen
class ClusterStatus(Request[rp.ClusterStatusReply]):
    TYPE = "cluster_status"
    REPLY = rp.ClusterStatusReply
    DOC = "the machines of the cluster (coordinator), or the link to the coordinator (member)"


@attrs.frozen
class ClusterRemove(Request[rp.Empty]):
    TYPE = "cluster_remove"
    DOC = "forget an admitted machine: its key is refused from now on, a connected one leaves"
    name: Name


@attrs.frozen
class ClusterProbe(Request[rp.LinkProbeReply]):
    TYPE = "cluster_probe"
    REPLY = rp.LinkProbeReply
    DOC = ("probe the links between machines, both ways, small and large (path and text: "
           "a dataflow whose placed edges to probe; none: every pair of connected machines)")
    path: str | None = None
    text: YamlText | None = None
    large: int = 8 << 20  # bytes of the large message (8 B for the small one)
    timeout: Seconds = Seconds(10.0)  # for each message's acknowledgement


@attrs.frozen
class RecordStart(Request[rp.RecordReply]):
    TYPE = "record_start"
    REPLY = rp.RecordReply
    DOC = "record outputs of a live run into a new MCAP file (path absolute; topics: all)"
    run: str
    path: str
    topics: list[str] = attrs.field(factory=list)


@attrs.frozen
class RecordRenew(Request[rp.RecordReply]):
    TYPE = "record_renew"
    REPLY = rp.RecordReply
    DOC = "keep a recording going (it stops after lease_s without a renewal); its state"
    recording: str


@attrs.frozen
class RecordStop(Request[rp.RecordReply]):
    TYPE = "record_stop"
    REPLY = rp.RecordReply
    DOC = "stop a recording: the file is finished; its summary"
    recording: str


@attrs.frozen
class InjectFatal(Request[rp.Empty]):
    TYPE = "_inject_fatal"
    HOOK = True
    DOC = "test hook: raise a broken invariant (only with FLOW_TEST_HOOKS=1)"


REQUESTS: dict[str, type[Request[Any]]] = {
    cls.TYPE: cls
    for cls in (
        Ping, Status, Start, Stop, StopAll, Restart, List, Logs, Wait, Shutdown,
        NodeList, NodeInfo, NodeStop, NodeRestart, NodeAdd, NodeRemove, NodeConnect,
        NodeDisconnect, TopicList, TopicSubscribe, TopicRenew, TopicUnsubscribe, Top,
        Prune, TopicInfo, TopicPublish, ClusterToken, ClusterRevoke, ClusterStatus,
        ClusterRemove, ClusterProbe, ParamList, ParamSet,
        RecordStart, RecordRenew, RecordStop, InjectFatal,
    )
}  # fmt: skip
