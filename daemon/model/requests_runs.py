"""Control requests about the daemon and whole runs (start, stop, list, logs, wait, top, prune)."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Empty
from daemon.model.replies_runs import (
    LogsReply,
    PingReply,
    RunReply,
    RunsReply,
    StatusReply,
    TopReply,
    WaitReply,
)
from daemon.model.requests_base import Env, Name, Request, Seconds, YamlText


@attrs.frozen
class Ping(Request[PingReply]):
    TYPE = "ping"
    REPLY = PingReply
    DOC = "is the daemon there: its pid, version and home"


@attrs.frozen
class Status(Request[StatusReply]):
    TYPE = "status"
    REPLY = StatusReply
    DOC = "the daemon's uptime, active runs and what is degraded"


@attrs.frozen
class Start(Request[RunReply]):
    TYPE = "start"
    REPLY = RunReply
    DOC = "validate and start a dataflow (path: the YAML's absolute path, text: its text)"
    path: str
    text: YamlText
    name: Name | None = None
    env: Env = attrs.field(factory=lambda: Env({}))
    record: str | None = None  # an absolute path: record every output there (MCAP)


@attrs.frozen
class Stop(Request[RunReply]):
    TYPE = "stop"
    REPLY = RunReply
    DOC = "stop a run: STOP, then SIGTERM after the grace, then SIGKILL (grace null: 10 s)"
    run: str
    grace: Seconds | None = None
    force: bool = False


@attrs.frozen
class StopAll(Request[RunsReply]):
    TYPE = "stop_all"
    REPLY = RunsReply
    DOC = "stop every active run"
    grace: Seconds | None = None
    force: bool = False


@attrs.frozen
class Restart(Request[RunReply]):
    TYPE = "restart"
    REPLY = RunReply
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
class List(Request[RunsReply]):
    TYPE = "list"
    REPLY = RunsReply
    DOC = "the active runs, or every run with all"
    all: bool = False


@attrs.frozen
class Logs(Request[LogsReply]):
    TYPE = "logs"
    REPLY = LogsReply
    DOC = (
        "a run's log files, per node (the CLI reads them itself); follow: a follower asks, "
        "so other machines' logs are forwarded into their copies (asked again within 10 s)"
    )
    run: str
    node: str | None = None
    # a follower asks (again): the copies of remote nodes' logs are kept growing meanwhile
    follow: bool = False


@attrs.frozen
class Wait(Request[WaitReply]):
    TYPE = "wait"
    REPLY = WaitReply
    DOC = "returns when the run has ended or after timeout seconds (at most 60)"
    run: str
    timeout: Seconds = Seconds(0.0)


@attrs.frozen
class Shutdown(Request[Empty]):
    TYPE = "shutdown"
    DOC = "stop every run (marked stopped) and exit the daemon"
    grace: Seconds | None = None


@attrs.frozen
class Top(Request[TopReply]):
    TYPE = "top"
    REPLY = TopReply
    DOC = "CPU, memory, rates and drops of every node; CPU over sample_s (at most 2 s)"
    sample_s: Seconds = Seconds(0.0)


@attrs.frozen
class Prune(Request[RunsReply]):
    TYPE = "prune"
    REPLY = RunsReply
    DOC = (
        "delete ended runs that ended over older_than seconds ago: their records, logs and "
        "dataflow copies; never an active run (dry_run: only list them)"
    )
    older_than: float = 0.0
    dry_run: bool = False


@attrs.frozen
class InjectFatal(Request[Empty]):
    TYPE = "_inject_fatal"
    HOOK = True
    DOC = "test hook: raise a broken invariant (only with FLOW_TEST_HOOKS=1)"
