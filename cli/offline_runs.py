"""A run and its log files from FLOW_HOME when no daemon answers: the state store, read-only.

Log files are plain files under FLOW_HOME, so `flow logs` needs no daemon to show them;
only finding the run by name needs the store. It is opened read-only (`mode=ro`), never
created or migrated: this module reads the columns `daemon/store.py` writes (the e2e test
of `flow logs` without a daemon reads a store the real daemon wrote).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cli.errors import BAD_INPUT, FAILED, CliError
from daemon.model import pids
from daemon.model.errors import ambiguous_run, did_you_mean
from daemon.model.run_names import pick_run
from daemon.model.run_rows import ACTIVE_STATUSES, run_info
from node_sdk import paths

ACTIVE = ACTIVE_STATUSES


def _open(home: Path) -> sqlite3.Connection | None:
    """The state store, read-only; None when there is none yet, or only its empty file (a
    start that found FLOW_HOME full made the file and could write nothing into it)."""
    db_path = paths.state_db(home)
    if not db_path.exists():
        return None
    try:
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=5.0)
        made = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
    except sqlite3.Error as exc:
        raise CliError(f"cannot read the state store {db_path}: {exc}") from None
    if made is None:
        db.close()
        return None
    db.row_factory = sqlite3.Row
    return db


def _with_nodes(db: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        run_info(row, db.execute(
            "SELECT * FROM nodes WHERE run_id = ? ORDER BY position", (row["id"],)
        ).fetchall())
        for row in rows
    ]  # fmt: skip


def runs(home: Path, *, include_ended: bool) -> list[dict[str, Any]]:
    """Every run the store holds (unless `include_ended`, the active and interrupted ones),
    oldest first, as the daemon's `flow list` gives them."""
    db = _open(home)
    if db is None:
        return []
    # an interrupted run (its daemon was stopped) is brought back by the next daemon
    where = "" if include_ended else f"WHERE status IN {(*ACTIVE, 'interrupted')!r}"
    try:
        rows = db.execute(f"SELECT * FROM runs {where} ORDER BY created").fetchall()
        return _with_nodes(db, rows)
    except sqlite3.Error as exc:
        raise CliError(f"cannot read the state store {paths.state_db(home)}: {exc}") from None
    finally:
        db.close()


def resolve(home: Path, ref: str) -> dict[str, Any]:
    """The run a RUN argument names (a UUID, a unique prefix or a name), as the daemon would."""
    db = _open(home)
    if db is None:
        raise CliError(
            f"no run with ID or name {ref!r}: no state store at {paths.state_db(home)}", FAILED
        )
    try:
        rows = db.execute(
            "SELECT * FROM runs WHERE id = ? OR name = ? OR id LIKE ? ORDER BY created DESC",
            (ref, ref, ref.replace("%", "").replace("_", "") + "%"),
        ).fetchall()
        return _pick(ref, _with_nodes(db, rows))
    except sqlite3.Error as exc:
        raise CliError(f"cannot read the state store {paths.state_db(home)}: {exc}") from None
    finally:
        db.close()


def _pick(ref: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    """The daemon's rule (daemon/run/runtime.py `resolve`): `pick_run`'s."""
    picked = pick_run(ref, matches, ACTIVE)
    if isinstance(picked, dict):
        return picked
    if not picked:
        raise CliError(f"no run with ID or name {ref!r}", FAILED)
    raise CliError(ambiguous_run(ref, picked), BAD_INPUT)


def being_run(run: dict[str, Any]) -> bool:
    """Whether a process still runs this run: a `flow run` alive under its recorded tag.

    With no daemon, a daemon run still marked active is run by nobody until `flow up`
    recovers it; following its logs would wait forever.
    """
    origin = str(run.get("origin") or "")
    return (
        run["status"] in ACTIVE
        and origin.startswith("foreground:")
        and pids.is_tagged_alive(origin.removeprefix("foreground:"))
    )


def log_files(home: Path, run: dict[str, Any], node: str | None) -> dict[str, str]:
    """Node id -> its log file, for every node of the run or just `node`."""
    node_ids = [n["id"] for n in run["nodes"]]
    if node is not None:
        if node not in node_ids:
            # a failed lookup (exit 1), as the daemon answers one for `flow param`, `node`
            hint = did_you_mean(node, node_ids)
            raise CliError(f"no node {node!r} in run {run['name'] or run['id']}{hint}", FAILED)
        node_ids = [node]
    return {n: str(paths.node_log(home, run["id"], n)) for n in node_ids}
