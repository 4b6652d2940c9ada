"""Hostile frames on the real daemon's node channel: each is refused or dropped with one
log line, and the daemon lives on (issue 11, item 1)."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import zmq
from helpers import flow
from procs import daemon_pid

from node_sdk import paths

BOUND_S = 15.0  # a safety bound on waits, never an assertion about speed
NESTED = b"[" * 1100 + b"]" * 1100  # 2,200 bytes: RecursionError for a plain json.loads


def _attach_frame(pid: object) -> bytes:
    return json.dumps({"t": "attach", "node": "viewer", "dataflow": None, "pid": pid}).encode()


HOSTILE_ATTACHES = {
    "nested": NESTED,
    "pid-list": _attach_frame([1]),
    "pid-inf": b'{"t":"attach","node":"viewer","dataflow":null,"pid":1e400}',
    "pid-huge": _attach_frame(10**30),
    "pid-text": _attach_frame("abc"),
}


def _log_count(home: Path, text: str) -> int:
    log = paths.daemon_log(home)
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def _wait_count(home: Path, text: str, want: int) -> int:
    deadline = time.monotonic() + BOUND_S
    while (count := _log_count(home, text)) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


Dealer = Callable[[bytes], zmq.Socket[bytes]]


@pytest.fixture
def dealer(daemon: Path) -> Iterator[Dealer]:
    """DEALERs with a chosen identity on the daemon's node channel, closed after the test."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    made: list[zmq.Socket[bytes]] = []

    def make(identity: bytes) -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.identity = identity
        sock.connect(paths.nodes_endpoint(daemon))
        made.append(sock)
        return sock

    try:
        yield make
    finally:
        for sock in made:
            sock.close(linger=0)
        ctx.term()


@pytest.mark.parametrize("name", list(HOSTILE_ATTACHES))
def test_a_hostile_attach_is_refused_in_one_line(daemon: Path, dealer: Dealer, name: str) -> None:
    before = _log_count(daemon, "node channel: dropped a malformed attach")
    sock = dealer(f"attach/{os.getpid()}/{secrets.token_hex(4)}".encode())
    sock.send(HOSTILE_ATTACHES[name])
    assert sock.poll(int(BOUND_S * 1000)), "no answer to a malformed attach"
    reply = json.loads(sock.recv())
    assert reply["t"] == "refused"
    assert reply["error"].startswith("malformed attach request: ")
    assert "\n" not in reply["error"]
    assert _wait_count(daemon, "node channel: dropped a malformed attach", before + 1) == before + 1
    _assert_daemon_serves(daemon)


def test_malformed_frames_from_a_node_identity_are_dropped_in_one_line_a_flood_too(
    daemon: Path, dealer: Dealer
) -> None:
    """One WARNING, then DEBUG for the next 10 s: a flood of them (an attacker's 100,000
    frames added 8.5 MB to daemon.log) adds one line."""
    text = "node channel: dropped a malformed message"
    sock = dealer(b"0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000/ghost/1")
    sock.send(NESTED)
    assert _wait_count(daemon, text, 1) == 1
    for _ in range(300):
        sock.send(b'{"t":"hello","run":"r","node":"n","generation":1,"pid":1e400}')
    # a well-formed frame last: its own warning says the flood before it was read
    sock.send(b'{"t":"hello","run":"r","node":"n","generation":1,"pid":1}')
    assert _wait_count(daemon, "hello from unknown node ghost", 1) == 1
    assert _log_count(daemon, text) == 1
    assert not sock.poll(200), "a dropped frame is not answered"
    _assert_daemon_serves(daemon)


def _assert_daemon_serves(home: Path) -> None:
    assert psutil.Process(daemon_pid(home)).is_running()
    assert "Traceback" not in paths.daemon_log(home).read_text(errors="replace")
    status = flow("status", home=home)
    assert status.returncode == 0, status.stdout + status.stderr


def test_messages_in_the_name_of_a_process_node_are_refused(
    daemon: Path, dealer: Dealer, tmp_path: Path
) -> None:
    """A process node (`connects: false`) never speaks on the channel: another process of
    the user that takes its identity (an attacker's flood of 860 KB stats frames) is
    refused before its counters reach the run."""
    script = tmp_path / "sleeper.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    graph = tmp_path / "sleep.yml"
    graph.write_text(f"nodes:\n  - id: sleeper\n    path: {script}\n")
    started = flow("start", str(graph), "--detach", "--name", "s", home=daemon)
    assert started.returncode == 0, started.stderr
    listed = json.loads(flow("list", "--json", home=daemon).stdout.splitlines()[0])
    full_id = str(listed["id"])
    sock = dealer(f"{full_id}/sleeper/1".encode())
    stats = {"t": "stats", "inputs": {}, "outputs": {"forged": {"sent": 10**9}}}
    for _ in range(3):
        sock.send(json.dumps(stats).encode())
    text = "in the name of process node sleeper"
    assert _wait_count(daemon, text, 1) == 1  # once, then DEBUG
    info = flow("node", "info", "s", "sleeper", "--json", home=daemon)
    assert "forged" not in info.stdout, info.stdout
    _assert_daemon_serves(daemon)
