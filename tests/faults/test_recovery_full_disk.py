"""A full disk under FLOW_HOME never costs a run its supervision or its stop (SPEC 7.3).

A daemon that comes back to a full disk cannot write the run's `running (recovered)`: it
adopts the run anyway, degraded, rather than dying of a traceback at its start and leaving
the run to its keeper's grace. A stop the store cannot take is told as it is, held, and
written at once in the room the store's reserve held for it, so the stopped run never
comes back at the next start.
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

from daemon.keeper.logs import STORE_ROOM_BYTES
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
    # the disk still full: the daemon frees the store's reserve for what it held, and
    # writes it within a second or so
    wait_for(lambda: stored_status(home, "full") == "stopped", "the stop was never written")
    assert not paths.state_reserve(home).exists()
    assert flow("down", home=home).returncode == 0
    up(home, ADOPT_GRACE)  # still full, and a stopped run never comes back (C6)
    assert runs(home)["full"]["status"] == "stopped"
    assert not runs(home)["full"]["recovered"]
    filler.unlink()  # room again: the reserve is made again
    wait_for(lambda: paths.state_reserve(home).exists(), "the reserve was not made again")


def stored_status(home: Path, name: str) -> str:
    """The run's status as `state.db` has it, read beside the daemon."""
    db = sqlite3.connect(f"file:{paths.state_db(home)}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT status FROM runs WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return str(row[0])


def test_flow_up_that_cannot_write_its_pid_file_says_which_and_why(flow_home: Path) -> None:
    """Its pid file refused (ENOSPC when the disk filled between the store and it), the
    daemon exited with the repr of a trio ExceptionGroup as the reason `flow up` gave. A
    folder in the way refuses it here, as a full disk did."""
    home = flow_home / "home"
    up(home)
    assert flow("down", home=home).returncode == 0
    paths.daemon_pid_file(home).mkdir()
    try:
        refused = flow("up", home=home)
        assert refused.returncode != 0
        assert f"cannot write {paths.daemon_pid_file(home)}: Is a directory" in refused.stderr, (
            refused.stderr)  # fmt: skip
        assert "ExceptionGroup" not in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        paths.daemon_pid_file(home).rmdir()
        daemon_down(home)


DISK_BYTES = 4 * 1024 * 1024
ONE_LINE = """
nodes:
  - id: hello
    path: sh
    args: -c 'echo said hello'
"""
NOISY = """
nodes:
  - id: noisy
    path: sh
    args: -c 'while true; do echo "a line of a node that prints without a pause, again"; done'
"""


def test_a_node_printing_without_pause_leaves_the_store_its_room(
    flow_home: Path, tmp_path: Path
) -> None:
    """Its log stops short of the last MiB where the state store is: the run says so
    (degraded), the store's reserve is never needed, and a stop is written at once."""
    home = flow_home / "home"
    with tmpfs(home, f"size={DISK_BYTES},mode=0700"):
        try:
            keep_room(home, tmp_path)
        finally:
            daemon_down(home)


def keep_room(home: Path, tmp_path: Path) -> None:
    up(home)
    (tmp_path / "noisy.yml").write_text(NOISY)
    noisy = flow("start", str(tmp_path / "noisy.yml"), "--detach", "--name", "noisy", home=home)
    assert noisy.returncode == 0, noisy.stderr
    start(home, tmp_path, "quiet")
    wait_for(lambda: "paused" in (runs(home)["noisy"]["degraded"] or ""), "logs never paused")
    logged = sum(log.stat().st_size for log in home.glob("runs/*/logs/noisy.log*"))
    assert logged <= DISK_BYTES - STORE_ROOM_BYTES, logged  # short of the store's last MiB
    stopped = flow("stop", "quiet", home=home)
    assert stopped.returncode == 0, stopped.stderr
    assert stored_status(home, "quiet") == "stopped"  # written at once: no room was missing
    assert paths.state_reserve(home).exists()  # nor was the reserve freed for it
    assert runs(home)["noisy"]["status"] == "running"
    assert "log lines dropped" in runs(home)["noisy"]["degraded"]


def test_flow_run_on_a_full_home_refuses_in_one_line_and_leaves_no_broken_store(
    flow_home: Path, tmp_path: Path
) -> None:
    """The store cannot be made: one line, exit 1; the empty file that start left is read as
    no store at all (not `no such table: runs`), and once there is room flow runs."""
    home = flow_home / "home"
    yml = tmp_path / "short.yml"
    yml.write_text(ONE_LINE)
    with tmpfs(home, "size=1m,mode=0700"):
        filler = home / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True,
                       check=False)  # fmt: skip  (until the disk is full)
        refused = flow("run", str(yml), home=home)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"error: state store {paths.state_db(home)} cannot be opened: database or disk is "
            "full"
        ]
        filler.unlink()
        listed = flow("list", "--all", home=home)
        assert listed.returncode == 0, listed.stderr
        assert "no such table" not in listed.stderr
        ran = flow("run", str(yml), home=home)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "said hello" in ran.stdout
