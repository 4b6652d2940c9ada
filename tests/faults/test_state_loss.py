"""State store loss (matrix rows 15-16, issue item 11): FLOW_HOME full (a real tmpfs),
kill -9 during rapid writes, state.db deleted while running. The nodes run on and the
status says why. (Row 14, a corrupt store, is tests/faults/test_state_store.py.)"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NODES, daemon_down, daemon_up, flow, stream_graph
from procs import alive, daemon_pid, node_processes

from node_sdk import paths


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real small filesystem mounted over `where` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(where)], capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; the file, to free the space later."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    try:
        # unbuffered: nothing is left to flush at close, which met ENOSPC in CI
        out = filler.open("wb", buffering=0)
    except OSError as exc:  # full already (the nodes' logs got there first): that will do
        if exc.errno != errno.ENOSPC:
            raise
        return filler  # never made: nothing of it to free later
    with out:
        for _ in range(100_000):  # bounded: far more than the tmpfs holds
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def info_of(home: Path, name: str) -> dict:
    runs = [json.loads(x) for x in flow("list", "--all", "--json", home=home).stdout.splitlines()]
    return [r for r in runs if r["name"] == name][-1]


def crash_loop_graph(tmp_path: Path) -> str:
    """The stream, and a node that crashes every second: state writes keep coming."""
    return stream_graph(tick_ms=10) + (
        f"  - id: crasher\n    path: {NODES}/crasher.py\n"
        f"    env: {{SPAWN_FILE: {tmp_path / 'spawns'}}}\n"
        # no limit on restarts: at 0.02 s apart a crash loop made 100 (the old limit) in
        # about 12 s, which a loaded machine's slow daemon restarts reached: it gave up
        "    restart_policy: on-failure\n    max_restarts: 0\n"
        "    restart_delay: 0.5\n    max_restart_delay: 0.5\n"
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


# a run's degradation by its store (`logs: paused ... where the state store is` is another)
STORE_DEGRADED = "state store: "
STORE_WAIT_S = 10.0  # for the store to meet the full disk (the logs' pause is shown at once)


def _status(home: Path, seen: list[str]) -> str:
    """`flow status`'s output, kept in `seen` too."""
    done = flow("status", home=home)
    seen.append(done.stdout + done.stderr)
    return seen[-1]


def test_row16_full_flow_home_degrades_and_nodes_run_on(flow_home: Path, tmp_path: Path) -> None:
    with tmpfs(flow_home, "16m"):
        daemon_up(flow_home)
        try:
            yml = tmp_path / "full.yml"
            yml.write_text(crash_loop_graph(tmp_path))
            assert (
                flow("start", str(yml), "--detach", "--name", "full", home=flow_home).returncode
                == 0
            )
            run_id = info_of(flow_home, "full")["id"]
            wait_for(lambda: {"counter", "sink"} <= node_processes(run_id).keys(), 20, "start")
            before = node_processes(run_id)
            spawns = tmp_path / "spawns"
            wait_for(lambda: spawns.exists(), 10, "the crasher never started")
            filler = fill(flow_home)
            crashes = len(spawns.read_text().splitlines())
            wait_for(lambda: len(spawns.read_text().splitlines()) >= crashes + 3, 15, "no restarts")
            # the store meets the full disk only once a write needs a page its files do not
            # have (its WAL and free pages take the crash loop's records for a while, longer
            # on a loaded machine); the node logs pause at once. `flow status` says which
            # (the daemon's log, on the same full disk, holds its lines until there is room)
            statuses: list[str] = []
            deadline = time.monotonic() + STORE_WAIT_S
            while STORE_DEGRADED not in _status(flow_home, statuses):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            store_failed = STORE_DEGRADED in statuses[-1]
            # the stream's nodes are the same processes: nothing was torn down
            after = node_processes(run_id)
            for node in ("counter", "sink"):
                assert after[node] == before[node], (node, before, after)
                assert alive(after[node][0])
            filler.unlink(missing_ok=True)
            assert "degraded" in statuses[-1], statuses[-1]
            assert flow("stop", "full", home=flow_home).returncode == 0
            log = paths.daemon_log(flow_home).read_text()
            failures = [line for line in log.splitlines() if STORE_DEGRADED in line]
            # SQLite's own words (SQLITE_FULL; SQLITE_IOERR when the write that met ENOSPC
            # was the WAL's), or the held writes' line once the reserve was freed for them
            said = ("disk is full", "disk I/O error", "No space left", "(a full disk?)")
            assert not store_failed or any(
                words in line for line in failures for words in said
            ), "\n".join(failures) or log[-2000:]
            info = info_of(flow_home, "full")
            assert info["status"] != "running", info  # the store caught up when space came back
        finally:
            daemon_down(flow_home)


def test_item11_state_db_deleted_while_running_is_recreated(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "gone.yml"
    yml.write_text(stream_graph(tick_ms=10))
    assert flow("start", str(yml), "--detach", "--name", "gone", home=daemon).returncode == 0
    run_id = info_of(daemon, "gone")["id"]
    wait_for(lambda: {"counter", "sink"} <= node_processes(run_id).keys(), 20, "start")
    before = node_processes(run_id)
    db = paths.state_db(daemon)
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    wait_for(db.exists, 5, "state.db was not recreated")
    status = flow("status", home=daemon)
    assert "degraded: state store:" in status.stdout + status.stderr, status
    assert "deleted" in status.stdout + status.stderr, status
    listed = info_of(daemon, "gone")  # the live run is back in the new store
    assert listed["id"] == run_id
    assert listed["status"] == "running"
    assert {n["id"] for n in listed["nodes"]} == {"counter", "sink"}
    assert node_processes(run_id) == before  # the nodes ran on untouched
    assert flow("stop", "gone", home=daemon).returncode == 0
    assert info_of(daemon, "gone")["status"] == "stopped"
    # on disk, in the file at the path, for the next daemon start to read
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert row == ("stopped",)
    summary = flow("logs", "gone", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary, summary


def test_row15_kill_9_during_rapid_writes_leaves_a_whole_store(
    flow_home: Path, tmp_path: Path
) -> None:
    """A crash loop writes the store several times a second; SIGKILL the daemon in the
    middle of it, three times: every restart opens the old or the new state, never a torn one."""
    yml = tmp_path / "writes.yml"
    yml.write_text(crash_loop_graph(tmp_path).replace("restart_delay: 0.5", "restart_delay: 0.02")
                   .replace("max_restart_delay: 0.5", "max_restart_delay: 0.02"))  # fmt: skip
    daemon_up(flow_home)
    try:
        assert flow("start", str(yml), "--detach", "--name", "w", home=flow_home).returncode == 0
        spawns = tmp_path / "spawns"
        for kill in range(3):
            seen = len(spawns.read_text().splitlines()) if spawns.exists() else 0
            try:
                wait_for(lambda s=seen: spawns.exists() and len(spawns.read_text().splitlines())
                         > s + 2, 45, "no writes")  # fmt: skip  (a bound, not a speed)
            except AssertionError:  # what the daemon and the keeper said, to tell why
                logs = [paths.daemon_log(flow_home), *flow_home.glob("runs/*/keeper.log")]
                said = "\n".join(f"--- {p}\n{p.read_text()[-4000:]}" for p in logs)
                raise AssertionError(f"no new spawns after kill {kill}\n{said}") from None
            os.kill(daemon_pid(flow_home), signal.SIGKILL)
            daemon_up(flow_home)
            with contextlib.closing(sqlite3.connect(paths.state_db(flow_home))) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert info_of(flow_home, "w")["status"] in ("running", "starting")
        log = paths.daemon_log(flow_home).read_text()
        assert "moved aside" not in log
        assert "corrupt" not in log
        assert flow("stop", "w", home=flow_home).returncode == 0
    finally:
        daemon_down(flow_home)
