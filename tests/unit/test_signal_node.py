"""The keeper's signal to a node that has no process group of its own yet (a forked node
between its fork and its `setsid`): the process itself gets it, through its pidfd. It used
to be lost, and a run stopped as it started waited out its grace to SIGKILL such a node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon.keeper.children import Child, signal_group, signal_node
from daemon.keeper.logs import NodeLog


def _child(process: subprocess.Popen[bytes], tmp_path: Path) -> Child:
    log = NodeLog(tmp_path / "n.log", "n", on_failure=lambda cause: None)
    return Child("n", 1, process, os.pidfd_open(process.pid), log, None)


def test_a_node_still_in_its_parents_group_is_signalled_itself(tmp_path: Path) -> None:
    # like a forked node before its setsid: in another process's group, none of its own
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child = _child(process, tmp_path)
    try:
        assert os.getpgid(process.pid) != process.pid
        assert signal_group(process.pid, signal.SIGTERM) is False  # no such group: lost
        assert signal_node(child, signal.SIGTERM) is True
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()
        os.close(child.pidfd)


def test_a_node_with_a_group_of_its_own_is_signalled_with_its_group(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); "
         "time.sleep(60)"],
        start_new_session=True,
    )  # fmt: skip
    child = _child(process, tmp_path)
    try:
        assert signal_node(child, signal.SIGTERM) is True
        assert process.wait(timeout=30) == -signal.SIGTERM
        deadline = time.monotonic() + 30  # what it started, in its group, got it too
        while _group_alive(process.pid):
            assert time.monotonic() < deadline, "the node's group outlived the signal"
            time.sleep(0.02)
    finally:
        signal_group(process.pid, signal.SIGKILL)
        os.close(child.pidfd)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # signal 0: only whether the group is there
    except ProcessLookupError:
        return False
    return True


def test_a_node_that_has_exited_is_not_signalled(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    child = _child(process, tmp_path)
    try:
        child.code = process.wait(timeout=30)
        assert signal_node(child, signal.SIGTERM) is False
    finally:
        os.close(child.pidfd)
