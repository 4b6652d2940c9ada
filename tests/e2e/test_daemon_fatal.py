"""Fatal errors (SPEC 7.2): the daemon exits non-zero with one clear line, nodes stopped first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import flow, flow_env

from node_sdk import paths


def serve(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "serve"],
        env=flow_env(home),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_cannot_bind_control_socket(flow_home: Path) -> None:
    folder = paths.socket_dir(flow_home)
    folder.mkdir(mode=0o700, parents=True)
    (folder / paths.CONTROL_SOCKET).mkdir()  # a folder where the socket must go
    try:
        done = serve(flow_home)
    finally:
        (folder / paths.CONTROL_SOCKET).rmdir()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "fatal: cannot bind the control socket" in lines[0]
    assert "Traceback" not in done.stderr


def test_state_store_cannot_be_opened(flow_home: Path) -> None:
    paths.state_db(flow_home).mkdir(parents=True)  # a folder where the database must be
    done = serve(flow_home)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "fatal: state store" in lines[0]
    assert "cannot be opened" in lines[0]
    assert not paths.socket_dir(flow_home).joinpath(paths.CONTROL_SOCKET).exists()


def test_flow_up_reports_a_fatal_start(flow_home: Path) -> None:
    paths.state_db(flow_home).mkdir(parents=True)
    done = flow("up", home=flow_home)
    assert done.returncode == 1
    assert "state store" in done.stderr
    assert "Traceback" not in done.stderr


def test_second_daemon_on_the_same_home_is_refused(daemon: Path) -> None:
    done = serve(daemon)
    assert done.returncode == 1
    assert "another flow daemon" in done.stderr
    assert flow("status", home=daemon).returncode == 0  # the first one is untouched


def test_pid_file_is_removed_on_exit(daemon: Path) -> None:
    pid = int(paths.daemon_pid_file(daemon).read_text())
    assert os.path.exists(f"/proc/{pid}")
    assert flow("down", home=daemon).returncode == 0
    assert not paths.daemon_pid_file(daemon).exists()
