"""Process facts through psutil: a pid with its create time names one process for good."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from procs import dead_pid

from daemon.model import pids
from node_sdk import paths

REPO = Path(__file__).resolve().parents[2]


def test_this_process_is_alive_and_tagged() -> None:
    me = os.getpid()
    assert pids.alive(me)
    started = pids.create_time(me)
    assert started == psutil.Process(me).create_time()
    assert pids.tag() == f"{me}:{started!r}"
    assert pids.is_tagged_alive(pids.tag())


def test_a_live_pid_with_another_create_time_is_not_the_tagged_process() -> None:
    started = pids.create_time(os.getpid())
    assert started is not None
    assert not pids.is_tagged_alive(f"{os.getpid()}:{started - 5.0!r}")
    assert not pids.is_tagged_alive(f"{os.getpid()}:{started + 5.0!r}")
    assert not pids.is_tagged_alive(f"{os.getpid()}:soon")


def test_a_bare_pid_counts_only_for_a_process_older_than_the_record() -> None:
    started = pids.create_time(os.getpid())
    assert started is not None
    assert pids.is_tagged_alive(str(os.getpid()), not_after=time.time())
    assert not pids.is_tagged_alive(str(os.getpid()), not_after=started - 5.0)
    assert not pids.is_tagged_alive(str(os.getpid()))


def test_gone_processes() -> None:
    dead = dead_pid()
    assert not pids.alive(dead)
    assert pids.create_time(dead) is None
    assert not pids.is_tagged_alive(f"{dead}:1.0")
    assert pids.cpu_seconds(dead) is None
    assert pids.rss_bytes(dead) is None
    assert not pids.is_tagged_alive("not-a-pid")


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pids.alive(child.pid)
        assert pids.create_time(child.pid) is None
    finally:
        child.wait()


def test_usage_and_daemon_check_of_this_process() -> None:
    me = os.getpid()
    used = pids.cpu_seconds(me)
    assert used is not None
    assert used > 0
    rss = pids.rss_bytes(me)
    assert rss is not None
    assert rss > 1 << 20
    assert not pids.is_flow_daemon(me)  # pytest, not `python -m daemon`


def test_a_clients_check_before_its_request_finds_a_dead_daemon_without_psutil(
    tmp_path: Path,
) -> None:
    """`daemon_exited`: a recorded pid no process has is gone; this one, or none recorded,
    is not; and `flow`'s own start (which makes that check) leaves psutil unimported."""
    assert not pids.daemon_exited(tmp_path)  # no daemon.pid: a daemon may be starting
    pid_file = paths.daemon_pid_file(tmp_path)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{dead_pid()}\n")
    assert pids.daemon_exited(tmp_path)
    pid_file.write_text(f"{os.getpid()}\n")
    assert not pids.daemon_exited(tmp_path)
    code = "import sys, cli.client; print('psutil' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)  # fmt: skip
    assert done.stdout.strip() == "False"
