"""Reply bodies about the daemon and whole runs (ping, status, runs, logs, wait, top)."""

from __future__ import annotations

import attrs

from daemon.model.replies_base import Json


@attrs.frozen
class PingReply:
    pid: int
    version: str
    home: str
    stopping: bool = False  # shutting down (`flow down`, SIGTERM): it starts nothing new


@attrs.frozen
class StatusReply:
    pid: int
    version: str
    home: str
    uptime_s: float
    runs_active: int
    degraded: list[str]
    metrics: str | None = None  # the URL of the Prometheus endpoint (`flow up --metrics`)


@attrs.frozen
class RunReply:
    """One run's RunInfo (`start`, `stop`, `restart`)."""

    run: Json


@attrs.frozen
class RunsReply:
    """RunInfo of several runs (`list`, `stop_all`); `omitted`: the older runs a `list`
    left out to stay within LIST_REPLY_BYTES."""

    runs: list[Json]
    omitted: int = 0


@attrs.frozen
class LogsReply:
    run: Json
    files: dict[str, str]


@attrs.frozen
class WaitReply:
    run: Json
    done: bool


@attrs.frozen
class TopReply:
    runs: list[Json]
    time: float
