"""The SQLite store: an older schema is migrated in place, rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
    store = Store.open(db)
    try:
        [run] = store.runs(include_ended=True)
        assert run["name"] == "old"
        assert run["recovered"] is False
    finally:
        store.close()
