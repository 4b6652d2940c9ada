"""Matrix row 19 and issue 11 item 8: one daemon per FLOW_HOME; a live socket is never taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import flow, flow_env, stream_graph
from procs import daemon_pid

from daemon.model.pids import alive
from node_sdk import paths


def up(home: Path) -> None:
    done = flow("up", home=home)
    assert done.returncode == 0, done.stdout + done.stderr


def run_info(home: Path, name: str) -> dict[str, Any]:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [r for r in runs if r["name"] == name][-1]


def start_streaming(home: Path, tmp_path: Path, name: str) -> dict[str, Any]:
    """A counter -> sink run, once the sink has received a few values."""
    yml = tmp_path / f"{name}.yml"
    yml.write_text(stream_graph(20))
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while "got data" not in flow("logs", name, "sink", home=home).stdout:
        assert time.monotonic() < deadline, "the sink never received a value"
        time.sleep(0.2)
    return run_info(home, name)


def serve(home: Path) -> subprocess.CompletedProcess[str]:
    """`python -m daemon serve` on `home`, as `flow up` would start it, but in the foreground."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--home", str(home)],
        env=flow_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def inode(path: Path) -> int:
    return path.lstat().st_ino


@pytest.fixture
def listener(flow_home: Path) -> Iterator[socket.socket]:
    """Another program of this user, listening at the daemon's control path."""
    folder = paths.socket_dir(flow_home)
    folder.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / paths.CONTROL_SOCKET))
    server.listen(8)
    try:
        yield server
    finally:
        server.close()
        (folder / paths.CONTROL_SOCKET).unlink(missing_ok=True)


def test_row19_second_daemon_on_one_home_is_refused_by_the_lock(
    flow_home: Path, tmp_path: Path
) -> None:
    up(flow_home)
    first = daemon_pid(flow_home)
    run = start_streaming(flow_home, tmp_path, "kept")
    sockets = paths.socket_dir(flow_home)
    before = {name: inode(sockets / name) for name in (paths.CONTROL_SOCKET, paths.NODES_SOCKET)}
    paths.daemon_pid_file(flow_home).unlink()  # the pid file says nothing any more
    done = serve(flow_home)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"another flow daemon (pid {first}) holds" in lines[0]
    # `flow up` gives way to the daemon that holds the lock, and names it
    again = flow("up", home=flow_home)
    assert again.returncode == 0, again.stderr
    assert f"pid {first}" in again.stdout + again.stderr
    # the first daemon keeps its pid, its sockets and its run
    assert alive(first)
    after = {name: inode(sockets / name) for name in (paths.CONTROL_SOCKET, paths.NODES_SOCKET)}
    assert after == before
    info = run_info(flow_home, "kept")
    assert info["id"] == run["id"]
    assert info["status"] == "running"
    assert [n["pid"] for n in info["nodes"]] == [n["pid"] for n in run["nodes"]]
    status = flow("status", home=flow_home)
    assert status.returncode == 0, status.stderr
    # nothing of the run was lost or repeated meanwhile
    assert flow("stop", "kept", home=flow_home).returncode == 0
    summary = flow("logs", "kept", "sink", home=flow_home).stdout.splitlines()
    assert any("gaps=0 repeats=0" in line for line in summary), summary[-5:]
    assert flow("down", home=flow_home).returncode == 0


def test_row19_live_socket_at_the_control_path_is_not_taken_over(
    flow_home: Path, listener: socket.socket
) -> None:
    control = paths.socket_dir(flow_home) / paths.CONTROL_SOCKET
    owner_inode = inode(control)
    done = serve(flow_home)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(control) in lines[0]
    assert f"pid {os.getpid()}" in lines[0]  # the process that serves it, named
    # still the other program's socket, and it still answers there
    assert inode(control) == owner_inode
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(control))
    accepted, _ = listener.accept()
    accepted.close()
    # the refusing daemon left nothing of its own: no node channel socket, no pid file
    assert not paths.nodes_socket(flow_home).exists()
    assert not paths.daemon_pid_file(flow_home).exists()


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except ConnectionRefusedError:
            return False
    return True


def test_row19_stale_sockets_are_unlinked_and_bound_again(flow_home: Path) -> None:
    folder = paths.socket_dir(flow_home)
    folder.mkdir(mode=0o700)
    names = (paths.CONTROL_SOCKET, paths.NODES_SOCKET)
    for name in names:
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(folder / name))  # its owner is gone: the file stays, nobody listens
        dead.close()
        assert not answers(folder / name)
    up(flow_home)
    assert all(answers(folder / name) for name in names)
    assert flow("status", home=flow_home).returncode == 0
    assert flow("down", home=flow_home).returncode == 0
