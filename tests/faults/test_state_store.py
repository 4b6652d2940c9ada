"""A corrupt or truncated state.db is moved aside with one clear line; nothing stale lives on."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from fault_tools import start, up
from helpers import flow
from procs import alive, daemon_pid, wait_gone

from node_sdk import paths


def corrupt(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[0:16] = b"this is garbage!"  # the SQLite header: the file is not a database now
    db.write_bytes(bytes(data))


def truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3 + 7])


@pytest.mark.parametrize("damage", [corrupt, truncate])
def test_damaged_store_is_moved_aside(flow_home: Path, tmp_path: Path, damage: object) -> None:
    up(flow_home)
    info = start(flow_home, tmp_path, "lost")
    node_pids = [n["pid"] for n in info["nodes"]]
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    db = paths.state_db(flow_home)
    time.sleep(0.2)
    with contextlib.closing(sqlite3.connect(db)) as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    assert callable(damage)
    damage(db)
    done = flow("up", home=flow_home)
    assert done.returncode == 0, done.stdout + done.stderr
    log = paths.daemon_log(flow_home).read_text()
    lines = [line for line in log.splitlines() if "moved aside" in line]
    assert len(lines) == 1, log
    assert "state store" in lines[0]
    assert "corrupt" in lines[0]
    aside = list(flow_home.glob("state.db.corrupt-*"))
    assert len(aside) == 1  # kept, not emptied
    # the stale nodes the lost store knew about do not live on
    assert not wait_gone(node_pids, 5), [p for p in node_pids if alive(p)]
    assert flow("list", "--all", home=flow_home).returncode == 0
    assert flow("down", home=flow_home).returncode == 0
