"""The SQLite store: an older schema is migrated in place, rows kept; pruning ended runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.model.errors import StateWriteFailed
from daemon.store import Store


def test_store_of_an_older_flow_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL,"
            " path TEXT NOT NULL, created REAL NOT NULL, ended REAL, error TEXT,"
            " degraded TEXT, origin TEXT NOT NULL DEFAULT 'daemon', env TEXT NOT NULL"
            " DEFAULT '{}')"
        )
        old.execute("INSERT INTO runs (id, name, status, path, created) VALUES"
                    " ('r1', 'old', 'succeeded', '/x.yml', 1.0)")  # fmt: skip
        old.execute(
            "CREATE TABLE nodes (run_id TEXT NOT NULL, node_id TEXT NOT NULL, position INTEGER"
            " NOT NULL, status TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0, pid"
            " INTEGER, restarts INTEGER NOT NULL DEFAULT 0, exit_code INTEGER, signal TEXT,"
            " stderr_tail TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (run_id, node_id))"
        )
        old.execute("INSERT INTO nodes (run_id, node_id, position, status) VALUES"
                    " ('r1', 'cam', 0, 'succeeded')")  # fmt: skip
    store = Store.open(db)
    try:
        [run] = store.runs(include_ended=True)
        assert run["name"] == "old"
        assert run["recovered"] is False
        [node] = run["nodes"]
        assert (node["id"], node["machine"], node["process"]) == ("cam", None, False)
    finally:
        store.close()


def test_a_store_held_in_memory_has_every_column(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store.path = blocker / "state.db"  # where no file can be made
    with pytest.raises(StateWriteFailed, match="cannot be created"):
        store.reopen()
    try:  # records go on in memory, placed runs and process nodes included
        store.create_run("r2", "placed", "/x.yml", [("cam", "pending"), ("sh", "pending")],
                         "daemon", {}, machines={"cam": "gpu"}, processes={"sh"})  # fmt: skip
        nodes = {n["id"]: n for n in store.runs(include_ended=True)[0]["nodes"]}
        assert (nodes["cam"]["machine"], nodes["cam"]["process"]) == ("gpu", False)
        assert (nodes["sh"]["machine"], nodes["sh"]["process"]) == (None, True)
    finally:
        store.close()


def test_prune_takes_only_ended_runs_that_ended_before_the_cutoff(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        for run_id, status, ended in [
            ("old", "succeeded", 10.0),
            ("kept", "failed", 10.0),  # still supervised: in `keep`
            ("young", "stopped", 1000.0),
            ("live", "running", None),
            ("waiting", "interrupted", 10.0),
        ]:
            store.create_run(run_id, None, "/x.yml", [("a", "pending")], "daemon", {})
            store.update_run(run_id, status=status, ended=ended)
            store.add_event(run_id, "a", "exited", "0")
        assert [r["id"] for r in store.prune(500.0, {"kept"}, dry_run=True)] == ["old"]
        assert len(store.runs(include_ended=True)) == 5
        assert [r["id"] for r in store.prune(500.0, {"kept"}, dry_run=False)] == ["old"]
        left = {r["id"] for r in store.runs(include_ended=True)}
        assert left == {"kept", "young", "live", "waiting"}
        for table in ("nodes", "events"):
            count = store.db.execute(f"SELECT count(*) FROM {table} WHERE run_id = 'old'")
            assert count.fetchone()[0] == 0
    finally:
        store.close()


def test_a_text_that_is_not_unicode_is_written_replaced_never_raised(tmp_path: Path) -> None:
    """A lone surrogate (a path that was not UTF-8) in a degraded text raised
    UnicodeEncodeError out of the write, in the daemon's nursery: the daemon died."""
    store = Store.open(tmp_path / "state.db")
    try:
        store.create_run("r1", "live", "/x.yml", [("a", "running")], "daemon", {})
        store.update_run("r1", degraded="recording: /tmp/r\ud800.mcap: the recorder did not start")
        [run] = store.runs(include_ended=True)
        assert run["degraded"] == "recording: /tmp/r?.mcap: the recorder did not start"
    finally:
        store.db.close()
