"""The run keeper on its own (real child processes, an inproc socket): pong, garbage, faults."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from procs import wait_gone

from daemon.keeper import process
from daemon.keeper.process import Keeper
from daemon.model.pids import alive
from node_sdk.wire import decode_control, encode_control

ANSWER_MS = 5000


Started = tuple[threading.Thread, zmq.Socket[bytes], list[BaseException]]


@pytest.fixture
def keeper() -> Iterator[Started]:
    """A keeper thread on an inproc socket, the daemon's DEALER to it, the loop's exception."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    started = start(context, "keeper")
    try:
        yield started
    finally:
        thread, daemon, _ = started
        if thread.is_alive():
            daemon.send(encode_control({"t": "quit"}))
            thread.join(10)
        daemon.close(linger=0)
        context.term()


def start(context: zmq.Context[zmq.Socket[bytes]], name: str) -> Started:
    keeper = Keeper.bind(context, f"inproc://{name}", grace=30.0)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            keeper.serve()
        except BaseException as exc:  # the test looks at what ended the loop
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    daemon = context.socket(zmq.DEALER)
    daemon.setsockopt(zmq.LINGER, 0)
    daemon.setsockopt(zmq.RCVTIMEO, ANSWER_MS)
    daemon.connect(f"inproc://{name}")
    return thread, daemon, errors


def spawn(daemon: zmq.Socket[bytes], tmp_path: Path) -> int:
    daemon.send(encode_control({
        "t": "spawn", "node": "sleeper", "generation": 1,
        "argv": [sys.executable, "-c", "import time; time.sleep(60)"],
        "env": {}, "cwd": str(tmp_path), "log": str(tmp_path / "sleeper.log"),
        "stdout_as": None,
    }))  # fmt: skip
    reply = decode_control(daemon.recv())
    assert reply["t"] == "spawned", reply
    return int(reply["pid"])


def test_the_keeper_answers_each_ping(keeper: Started) -> None:
    thread, daemon, _ = keeper
    daemon.send(encode_control({"t": "ping"}))
    assert decode_control(daemon.recv())["t"] == "pong"
    daemon.send(encode_control({"t": "quit"}))
    thread.join(10)
    assert not thread.is_alive()


def test_a_keeper_that_raises_stops_its_children(
    keeper: Started, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread, daemon, errors = keeper
    monkeypatch.setattr(process, "_TEST_FAULT", "keeper-raise")
    pid = spawn(daemon, tmp_path)
    thread.join(process.ORPHAN_KILL_S + 5)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [RuntimeError]
    assert not wait_gone([pid], 2.0), "the keeper's exception orphaned its node"
    assert not alive(pid)
