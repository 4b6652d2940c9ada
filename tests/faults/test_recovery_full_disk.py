"""A daemon that comes back to a full disk still takes its runs back (SPEC 7.3).

The state store cannot take a write, so the run's `running (recovered)` is not written:
the run is adopted anyway, degraded, rather than the daemon dying of a traceback at its
start and leaving the run to its keeper's grace.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from fault_tools import ADOPT_GRACE, diagnostics, start, tmpfs, up
from helpers import daemon_down, flow
from procs import daemon_pid, node_processes, wait_gone


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
