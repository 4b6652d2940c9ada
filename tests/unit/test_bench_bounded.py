"""The bench's bounded run: past its bound, the CLI and everything it started are gone
(a timed-out dora chain used to leave its node processes loading the machine)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from bench.bounded import run_bounded

BOUND_S = 30.0  # a safety bound on the wait for the processes to go, not a speed check


def test_a_run_past_its_bound_leaves_no_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # a "CLI" that ignores SIGTERM and starts two long children, as a hung run would
    script = f"trap '' TERM; sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait"
    with pytest.raises(subprocess.TimeoutExpired):
        run_bounded(["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, tmp_path, timeout=1.0,
                    grace=0.5)  # fmt: skip
    children = [int(line) for line in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + BOUND_S
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
              for pid in children):  # fmt: skip
        assert time.monotonic() < deadline, "a child of the timed-out run outlived it"
        time.sleep(0.05)


def test_a_run_within_its_bound_gives_its_output(tmp_path: Path) -> None:
    done = run_bounded(["sh", "-c", "echo out; echo err >&2; exit 3"], {"PATH": "/usr/bin:/bin"},
                       tmp_path, timeout=BOUND_S)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
