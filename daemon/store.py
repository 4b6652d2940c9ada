"""Durable state in SQLite (`$FLOW_HOME/state.db`, WAL): runs, nodes, events.

Every write is one transaction, so a crash leaves either the old or the new state. Calls
are short and local, so they run inline in the trio thread.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import attrs

from daemon.model.errors import StateStoreUnusable, StateWriteFailed
from daemon.model.run_rows import run_info
from daemon.model.stderr_tail import bound_tail
from daemon.store_file import (
    connect,
    identity,
    in_memory,
    is_corruption,
    move_aside,
)
from node_sdk import paths

# the statuses nothing will change any more: what `flow prune` may remove (an interrupted
# run waits for the next daemon's recovery)
ENDED_STATUSES = ("succeeded", "stopped", "failed")

NODE_FIELDS = (
    "status", "generation", "pid", "restarts", "exit_code", "signal", "stderr_tail", "removed"
)
RUN_FIELDS = ("status", "ended", "error", "degraded", "name", "recovered", "stop_grace")


@attrs.define(eq=False)
class Store:
    """The daemon's SQLite connection."""

    path: Path
    db: sqlite3.Connection
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) of the file `db` opened

    def __attrs_post_init__(self) -> None:
        self.inode = identity(self.path)

    def lost(self) -> str | None:
        """Why the file at `path` is no longer the store open here (deleted, replaced)."""
        try:
            now = identity(self.path)
        except OSError as exc:
            return f"{self.path} cannot be read: {exc.strerror or exc}"
        if self.inode is None:
            return f"{self.path} could not be created: held in memory only"
        if now is None:
            return f"{self.path} was deleted"
        if now != self.inode:
            return f"{self.path} was replaced by another file"
        return None

    def reopen(self) -> None:
        """Open (creating) the store at `path` again, in place of a lost file.

        The old connection is closed first, and a -wal/-shm left beside the path is set
        aside: they belong to the lost file, and replayed into a new one they corrupt it.
        """
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        stale = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        with contextlib.suppress(OSError):  # cannot tell: the new connection will say
            if identity(self.path) is None:
                for extra in stale:
                    with contextlib.suppress(FileNotFoundError):
                        extra.replace(extra.with_name(f"{extra.name}.lost-{int(time.time())}"))
        try:
            self.db = connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            # requests and records go on in memory until the file can be made (`lost`)
            self.db = in_memory()
            self.inode = None
            raise StateWriteFailed(f"state store {self.path} cannot be created: {exc}") from exc
        self.inode = identity(self.path)

    @classmethod
    def open(cls, path: Path, on_corrupt: Callable[[str], None] | None = None) -> Store:
        """Open (creating) the store; a store that cannot be opened is fatal (SPEC 7.2).

        A corrupt one is moved aside, never silently emptied: `on_corrupt` hears where to,
        and a new empty store takes its place.
        """
        try:
            return cls(path=path, db=connect(path))
        except sqlite3.DatabaseError as exc:
            if on_corrupt is None or not is_corruption(exc):
                raise StateStoreUnusable(f"state store {path} cannot be opened: {exc}") from exc
            aside = move_aside(path)
            on_corrupt(f"state store {path} is corrupt ({exc}): moved aside to {aside}")
        except (sqlite3.Error, OSError) as exc:
            raise StateStoreUnusable(f"state store {path} cannot be opened: {exc}") from exc
        try:
            return cls(path=path, db=connect(path))
        except (sqlite3.Error, OSError) as exc:
            raise StateStoreUnusable(f"state store {path} cannot be opened: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, params: Iterable[Any]) -> None:
        values = tuple(params)
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute(sql, values)
        except UnicodeEncodeError:
            # a text with a lone surrogate (a name or path that was not UTF-8) that got
            # past the doors: written with it replaced, never a failed write, let alone
            # an exception in the daemon's nursery
            self._write(sql, [_utf8(value) for value in values])
        except sqlite3.Error as exc:
            raise StateWriteFailed(f"state store {self.path} write failed: {exc}") from exc

    def create_run(
        self,
        run_id: str,
        name: str | None,
        path: str,
        node_ids: list[tuple[str, str]],
        origin: str,
        env: dict[str, str],
        text: str | None = None,
        machines: dict[str, str] | None = None,
        processes: Collection[str] = (),
        record: str | None = None,
    ) -> None:
        """Record a new run and its nodes (id, initial status, the machine of each in a run
        placed on several, and which are process nodes) in one transaction; `record`: the
        file it is recorded into from its start."""
        where = machines or {}
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute(
                    "INSERT INTO runs (id, name, status, path, created, origin, env, text,"
                    " record) VALUES (?, ?, 'starting', ?, ?, ?, ?, ?, ?)",
                    (run_id, name, path, time.time(), origin, json.dumps(env), text, record),
                )
                self.db.executemany(
                    "INSERT INTO nodes (run_id, node_id, position, status, machine, process)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (run_id, nid, i, status, where.get(nid), int(nid in processes))
                        for i, (nid, status) in enumerate(node_ids)
                    ],
                )
        except sqlite3.Error as exc:
            raise StateWriteFailed(f"state store {self.path} write failed: {exc}") from exc

    def add_node(self, run_id: str, node_id: str, position: int, process: bool = False) -> None:
        """A node added to a running graph (`process`: a process node); the row of a node
        of that id removed before is taken over (its generation goes on)."""
        self._write(
            "INSERT INTO nodes (run_id, node_id, position, status, process)"
            " VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (run_id, node_id) DO UPDATE SET"
            " status = 'pending', process = excluded.process, removed = 0, pid = NULL,"
            " exit_code = NULL, signal = NULL, stderr_tail = '[]', restarts = 0",
            [run_id, node_id, position, int(process)],
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(RUN_FIELDS)
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])

    def update_node(self, run_id: str, node_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(NODE_FIELDS)
        if unknown:
            raise ValueError(f"unknown node fields {sorted(unknown)}")
        if "stderr_tail" in fields:
            fields["stderr_tail"] = json.dumps(bound_tail(fields["stderr_tail"]))
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._write(
            f"UPDATE nodes SET {sets} WHERE run_id = ? AND node_id = ?",
            [*fields.values(), run_id, node_id],
        )

    def add_event(self, run_id: str | None, node_id: str | None, kind: str, detail: str) -> None:
        self._write(
            "INSERT INTO events (run_id, node_id, time, kind, detail) VALUES (?, ?, ?, ?, ?)",
            [run_id, node_id, time.time(), kind, detail],
        )

    def run_env(self, run_id: str) -> dict[str, str]:
        row = self.db.execute("SELECT env FROM runs WHERE id = ?", (run_id,)).fetchone()
        env = json.loads(row["env"]) if row is not None else {}
        return {str(k): str(v) for k, v in env.items()}

    def add_edit(self, run_id: str, edit: dict[str, Any]) -> None:
        """One more graph edit in the run's journal (daemon/run/graph_edits.py)."""
        self._write(
            "UPDATE runs SET edits = json_insert(COALESCE(edits, '[]'), '$[#]', json(?))"
            " WHERE id = ?",
            [json.dumps(edit), run_id],
        )

    def run_edits(self, run_id: str) -> list[dict[str, Any]]:
        """The run's graph edits in the order they were made; [] for none, or a journal
        that does not read as one."""
        row = self.db.execute("SELECT edits FROM runs WHERE id = ?", (run_id,)).fetchone()
        try:
            edits = json.loads(row["edits"]) if row is not None and row["edits"] else []
        except ValueError:
            return []
        return [e for e in edits if isinstance(e, dict)] if isinstance(edits, list) else []

    def run_text(self, run_id: str) -> str | None:
        """The dataflow's text as the run was started, if the store kept it."""
        row = self.db.execute("SELECT text FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None or row["text"] is None else str(row["text"])

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs a daemon left active or interrupted: the candidates for recovery."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE status IN ('starting', 'running', 'interrupted')"
            " ORDER BY created"
        ).fetchall()
        return [self._run_info(row) for row in rows]

    def runs(self, *, include_ended: bool) -> list[dict[str, Any]]:
        where = "" if include_ended else "WHERE status IN ('starting', 'running')"
        rows = self.db.execute(f"SELECT * FROM runs {where} ORDER BY created").fetchall()
        return [self._run_info(row) for row in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._run_info(row)

    def find_runs(self, ref: str) -> list[dict[str, Any]]:
        """Runs whose id is `ref`, starts with `ref`, or whose name is `ref` (newest first)."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE id = ? OR name = ? OR id LIKE ? ORDER BY created DESC",
            (ref, ref, ref.replace("%", "").replace("_", "") + "%"),
        ).fetchall()
        return [self._run_info(row) for row in rows]

    def prune(
        self, ended_before: float, keep: Collection[str], *, dry_run: bool
    ) -> list[dict[str, Any]]:
        """Delete the ended runs that ended before `ended_before` (epoch seconds), and their
        nodes and events, in one transaction; never a run in `keep` (still supervised).
        Returns their infos (what would go, with `dry_run`)."""
        marks = ", ".join("?" for _ in ENDED_STATUSES)
        rows = self.db.execute(
            f"SELECT * FROM runs WHERE status IN ({marks}) AND COALESCE(ended, created) < ?"
            " ORDER BY created",
            (*ENDED_STATUSES, ended_before),
        ).fetchall()
        gone = [self._run_info(row) for row in rows if row["id"] not in keep]
        if dry_run or not gone:
            return gone
        # one JSON list of ids: each table is scanned once (events has no index by run)
        ids = json.dumps([info["id"] for info in gone])
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for table, column in (("events", "run_id"), ("nodes", "run_id"),
                                      ("params", "run_id"), ("runs", "id")):  # fmt: skip
                    self.db.execute(
                        f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                        (ids,),
                    )
        except sqlite3.Error as exc:
            raise StateWriteFailed(f"state store {self.path} write failed: {exc}") from exc
        return gone

    def _run_info(self, row: sqlite3.Row) -> dict[str, Any]:
        nodes = self.db.execute(
            "SELECT * FROM nodes WHERE run_id = ? ORDER BY position", (row["id"],)
        ).fetchall()
        return run_info(row, nodes)


def _utf8(value: Any) -> Any:
    """`value`, a str with each character UTF-8 cannot encode replaced by `?`."""
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else value


def remove_run_folders(home: Path, run_ids: Iterable[str]) -> list[str]:
    """Delete pruned runs' folders (logs, dataflow copy); one line per folder that stayed."""
    problems = []
    for run_id in run_ids:
        if not run_id or "/" in run_id or run_id in (".", ".."):
            continue  # the daemon makes UUIDs; anything else is not a folder of ours
        folder = paths.run_dir(home, run_id)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"cannot remove {folder}: {exc.strerror or exc}")
    return problems
