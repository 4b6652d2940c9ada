"""A full disk under FLOW_HOME never costs a run its supervision or its stop (SPEC 7.3).

A daemon that comes back to a full disk cannot write the run's `running (recovered)`: it
adopts the run anyway, degraded, rather than dying of a traceback at its start and leaving
the run to its keeper's grace. A stop the store cannot take is told as it is, held, and
written once there is room, so the stopped run never comes back at the next start.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

from fault_tools import ADOPT_GRACE, diagnostics, runs, start, tmpfs, up
from helpers import daemon_down, flow, wait_for
from procs import daemon_pid, node_processes, wait_gone

from node_sdk import paths


def test_flow_up_on_a_full_disk_adopts_the_run_degraded(flow_home: Path, tmp_path: Path) -> None:
    home = flow_home / "home"
    with tmpfs(home, "size=2m,mode=0700"):
        try:
            come_back_full(home, tmp_path)
        finally:
            daemon_down(home)


def come_back_full(home: Path, tmp_path: Path) -> None:
    up(home, ADOPT_GRACE)
    info = start(home, tmp_path, "full")
    filler = home / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True,
                   check=False)  # fmt: skip  (until the disk is full)
    killed = daemon_pid(home)
    os.kill(killed, signal.SIGKILL)
    assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
    again = flow("up", home=home, env_extra={"FLOW_DAEMON_GRACE": ADOPT_GRACE})
    assert again.returncode == 0, f"{again.stderr}\n{diagnostics(home)}"
    assert "Traceback" not in again.stderr
    status = flow("status", home=home)
    assert "state store" in status.stdout + status.stderr, status.stdout
    assert set(node_processes(info["id"])) == {"counter", "sink"}  # adopted, still running
    filler.unlink()
    stopped = flow("stop", "full", home=home)
    assert stopped.returncode == 0, stopped.stderr
    assert not node_processes(info["id"])


def test_a_stop_on_a_full_disk_is_written_once_there_is_room(
    flow_home: Path, tmp_path: Path
) -> None:
    home = flow_home / "home"
    with tmpfs(home, "size=2m,mode=0700"):
        try:
            stop_while_full(home, tmp_path)
        finally:
            daemon_down(home)


def stop_while_full(home: Path, tmp_path: Path) -> None:
    up(home, ADOPT_GRACE)
    start(home, tmp_path, "full")
    filler = home / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True,
                   check=False)  # fmt: skip  (until the disk is full)
    stopped = flow("stop", "full", "--grace", "2s", home=home)
    assert stopped.returncode == 0, stopped.stderr
    # told as it is, though the store could not take it
    assert "run full" in stopped.stdout
    assert "stopped" in stopped.stdout.splitlines()[0], stopped.stdout
    assert "still running" not in stopped.stdout, stopped.stdout
    assert runs(home)["full"]["status"] == "stopped"
    filler.unlink()  # room again: the daemon writes what it held within a second or so
    wait_for(lambda: stored_status(home, "full") == "stopped", "the stop was never written")
    assert flow("down", home=home).returncode == 0
    up(home, ADOPT_GRACE)  # and a stopped run never comes back (C6)
    assert runs(home)["full"]["status"] == "stopped"
    assert not runs(home)["full"]["recovered"]


def stored_status(home: Path, name: str) -> str:
    """The run's status as `state.db` has it, read beside the daemon."""
    db = sqlite3.connect(f"file:{paths.state_db(home)}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT status FROM runs WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return str(row[0])
