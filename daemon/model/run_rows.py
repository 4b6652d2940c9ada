"""A run's row and its nodes' rows in the state store -> the run as every reader shows it:
the daemon's store, and the CLI's read-only look at the store when no daemon answers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from daemon.model.stderr_tail import bound_tail

# the runs a daemon (or a `flow run`) is still responsible for
ACTIVE_STATUSES = ("starting", "running")
# a `list` reply's runs, in JSON: a reply is sent whole or not at all, and the daemon holds
# at most 4 MiB of replies a client has not read yet (daemon.run.peer_outbox.PEER_BYTES)
LIST_REPLY_BYTES = 2 << 20


def run_info(row: Any, node_rows: Iterable[Any]) -> dict[str, Any]:
    """A `runs` row and its `nodes` rows (sqlite3.Row, or any mapping) -> the run's info.

    A column a store of an older flow lacks (the CLI reads a store no daemon has migrated
    yet) reads as its default."""
    run = dict(row)
    nodes = [dict(node) for node in node_rows]
    return {
        "id": run["id"],
        "name": run["name"],
        "status": run["status"],
        "path": run["path"],
        "created": run["created"],
        "ended": run["ended"],
        "error": run["error"],
        "degraded": run["degraded"],
        "origin": run.get("origin", "daemon"),
        "recovered": bool(run.get("recovered")),
        "record": run.get("record"),
        "stop_grace": run.get("stop_grace"),
        "nodes": [
            {
                "id": n["node_id"],
                "status": n["status"],
                "pid": n["pid"],
                "generation": n["generation"],
                "restarts": n["restarts"],
                "exit_code": n["exit_code"],
                "signal": n["signal"],
                "stderr_tail": _tail(n["stderr_tail"]),
                "machine": n.get("machine"),
                "process": bool(n.get("process")),
                "removed": bool(n.get("removed")),
            }
            for n in nodes
        ],
    }


def _tail(text: str) -> list[str]:
    """The stored JSON list of a node's last stderr lines, within its bounds (a store an
    older flow wrote holds lines of up to 64 KiB); [] for anything else."""
    try:
        tail = json.loads(text)
    except ValueError:
        return []
    return bound_tail(tail) if isinstance(tail, list) else []


def newest_within(runs: list[dict[str, Any]], budget: int = LIST_REPLY_BYTES) -> list[Any]:
    """The newest of `runs` (oldest first, as the store lists them) whose JSON fits in
    `budget` together, oldest first; the newest run always."""
    kept: list[dict[str, Any]] = []
    for info in reversed(runs):
        budget -= len(json.dumps(info))
        if kept and budget < 0:
            break
        kept.append(info)
    kept.reverse()
    return kept


# a node's statuses while it runs or will run again (as RunInfo has them)
GOING_STATUSES = frozenset({"pending", "starting", "running", "restarting"})


def failed_while_going(nodes: list[dict[str, Any]], told: set[str]) -> list[dict[str, Any]]:
    """A run's nodes (RunInfo's) that failed for good since `told` (which this updates)
    while another still runs: the run goes on, and its end would be the first word of them
    (`flow run`, a followed run)."""
    if not any(node.get("status") in GOING_STATUSES for node in nodes):
        return []  # the run is ending: its account says it
    failed = [node for node in nodes
              if node.get("status") == "failed" and str(node.get("id")) not in told]  # fmt: skip
    told.update(str(node.get("id")) for node in failed)
    return failed
