"""`flow list --limit` and `flow prune` as a user runs them: through the daemon, and on the
store directly when no daemon runs; an active run and its files are never touched."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from helpers import daemon_down, daemon_up, flow, stream_graph, write_dataflow

from node_sdk import paths

ONE_SHOT = """\
nodes:
  - id: once
    path: once.py
"""


def _ended_run(home: Path, tmp_path: Path, name: str) -> str:
    """A run that ends at once (succeeded), by `flow run`: no daemon needed."""
    yml = write_dataflow(tmp_path, ONE_SHOT, {"once.py": "print('done')\n"})
    done = flow("run", str(yml), home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _all_runs(home)
    return str(runs[-1]["id"])


def _all_runs(home: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(paths.state_db(home))
    try:
        rows = db.execute("SELECT id, status FROM runs ORDER BY created").fetchall()
    finally:
        db.close()
    return [{"id": row[0], "status": row[1]} for row in rows]


def test_prune_through_the_daemon_keeps_the_active_run(flow_home: Path, tmp_path: Path) -> None:
    ended = [_ended_run(flow_home, tmp_path / str(i), f"e{i}") for i in range(2)]
    daemon_up(flow_home)
    try:
        yml = tmp_path / "live.yml"
        yml.write_text(stream_graph(50))
        started = flow("start", str(yml), "--detach", "--name", "live", home=flow_home)
        assert started.returncode == 0, started.stderr
        live = _all_runs(flow_home)[-1]["id"]
        listed = flow("list", "--all", "--json", "--limit", "2", home=flow_home)
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [ended[1], live]
        assert flow("list", "--limit", "0", home=flow_home).returncode == 2

        dry = flow("prune", "--dry-run", home=flow_home)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines()[-1] == "would delete 2 runs"
        assert len(_all_runs(flow_home)) == 3
        young = flow("prune", "--older-than", "1h", home=flow_home)
        assert young.stdout.splitlines() == ["deleted 0 runs"], young.stdout + young.stderr

        done = flow("prune", home=flow_home)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "deleted 2 runs"
        assert [run["id"] for run in _all_runs(flow_home)] == [live]
        for run_id in ended:
            assert not paths.run_dir(flow_home, run_id).exists()
        assert paths.dataflow_copy(flow_home, live).exists()
        assert flow("stop", "live", home=flow_home).returncode == 0
    finally:
        daemon_down(flow_home)


def test_prune_without_a_daemon_works_on_the_store(flow_home: Path, tmp_path: Path) -> None:
    ended = _ended_run(flow_home, tmp_path, "e")
    assert paths.node_log(flow_home, ended, "once").exists()
    lock = os.open(paths.daemon_lock_file(flow_home), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # a daemon starting meanwhile holds the lock: refused, nothing deleted
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = flow("prune", home=flow_home)
        assert held.returncode == 1
        assert "run flow prune again" in held.stderr
        assert [run["id"] for run in _all_runs(flow_home)] == [ended]
    finally:
        os.close(lock)
    done = flow("prune", "--older-than", "0s", home=flow_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "deleted 1 run"
    assert _all_runs(flow_home) == []
    assert not paths.run_dir(flow_home, ended).exists()
    bad = flow("prune", "--older-than", "soon", home=flow_home)
    assert bad.returncode == 2
    assert "invalid duration 'soon'" in bad.stderr


def test_prune_never_takes_an_interrupted_run(flow_home: Path, tmp_path: Path) -> None:
    ended = _ended_run(flow_home, tmp_path, "e")
    db = sqlite3.connect(paths.state_db(flow_home))
    db.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (ended,))
    db.commit()
    db.close()
    done = flow("prune", home=flow_home)
    assert done.stdout.splitlines() == ["deleted 0 runs"], done.stdout + done.stderr
    assert paths.run_dir(flow_home, ended).exists()
