"""The state store's SQLite file (`$FLOW_HOME/state.db`): schema, migration, opening.

The columns added since a store was first made are added to an older file in place; a
file is opened in WAL mode after a quick check, a corrupt one is told apart and set aside,
and the file opened is known by its device and inode (daemon/store.py's `lost`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from daemon.model.params import SCHEMA as PARAMS_SCHEMA

WAL_CHECKPOINT_PAGES = 64  # 256 KiB of 4 KiB pages
WAL_LIMIT_BYTES = 512 * 1024  # the WAL file is cut back to this after a checkpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    ended REAL,
    error TEXT,
    degraded TEXT,
    origin TEXT NOT NULL DEFAULT 'daemon',
    env TEXT NOT NULL DEFAULT '{}',
    recovered INTEGER NOT NULL DEFAULT 0,
    text TEXT
);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    node_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    restarts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    signal TEXT,
    stderr_tail TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, node_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    node_id TEXT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs(name);
CREATE TABLE IF NOT EXISTS cluster_tokens (
    id TEXT PRIMARY KEY,
    admission_key TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS cluster_machines (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    address TEXT,
    admitted REAL NOT NULL,
    state TEXT NOT NULL
);
"""

def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # the WAL file stays small (its default lets it grow to 4 MiB before it is reused):
        # on a full disk the store needs no more room than node logs leave it (1 MiB)
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed")
        db.executescript(SCHEMA + PARAMS_SCHEMA)
        migrate(db)
        db.execute("SELECT count(*) FROM runs").fetchone()
    except BaseException:
        db.close()
        raise
    return db


# columns added after a store was first made: (table, column, declaration)
ADDED_COLUMNS = (
    ("runs", "recovered", "INTEGER NOT NULL DEFAULT 0"),
    ("runs", "text", "TEXT"),  # the dataflow as started: recovery's second copy
    ("runs", "record", "TEXT"),  # its `--record PATH`: a recovered run is recorded again
    ("runs", "edits", "TEXT"),  # a JSON list of its graph edits, which recovery makes again
    ("runs", "stop_grace", "REAL"),  # a stop asked (`flow stop`): a recovery finishes it
    ("nodes", "machine", "TEXT"),  # where a placed run's node runs; NULL on one machine
    # 1: a process node (`connects: false`), stopped by SIGTERM at once rather than STOP
    ("nodes", "process", "INTEGER NOT NULL DEFAULT 0"),
    # 1: taken out of its live run by `flow node remove` (its row and logs stay)
    ("nodes", "removed", "INTEGER NOT NULL DEFAULT 0"),
)


def migrate(db: sqlite3.Connection) -> None:
    """Bring a store made by an older flow up to this schema, keeping its rows."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`; None when there is none."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino)


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    path.replace(aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.replace(aside.with_name(aside.name + suffix))
    return aside


def in_memory() -> sqlite3.Connection:
    """A store in memory, of this schema: where records go while the file cannot be made."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA + PARAMS_SCHEMA)
    migrate(db)  # the columns added since are not in SCHEMA
    return db
