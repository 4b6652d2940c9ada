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
    before = _log_count(daemon, "refused a malformed attach")
    sock = dealer(f"attach/{os.getpid()}/{secrets.token_hex(4)}".encode())
    sock.send(HOSTILE_ATTACHES[name])
    assert sock.poll(int(BOUND_S * 1000)), "no answer to a malformed attach"
    reply = json.loads(sock.recv())
    assert reply["t"] == "refused"
    assert reply["error"].startswith("malformed attach request: ")
    assert "\n" not in reply["error"]
    assert _wait_count(daemon, "refused a malformed attach", before + 1) == before + 1
    _assert_daemon_serves(daemon)


def test_a_nested_frame_from_a_node_identity_is_dropped_in_one_line(
    daemon: Path, dealer: Dealer
) -> None:
    text = "node channel: dropped a malformed message"
    before = _log_count(daemon, text)
    sock = dealer(b"0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000/ghost/1")
    for frame in (NESTED, b'{"t":"hello","run":"r","node":"n","generation":1,"pid":1e400}'):
        sock.send(frame)
    assert _wait_count(daemon, text, before + 2) == before + 2
    assert not sock.poll(200), "a dropped frame is not answered"
    _assert_daemon_serves(daemon)


def _assert_daemon_serves(home: Path) -> None:
    assert psutil.Process(daemon_pid(home)).is_running()
    assert "Traceback" not in paths.daemon_log(home).read_text(errors="replace")
    status = flow("status", home=home)
    assert status.returncode == 0, status.stdout + status.stderr
