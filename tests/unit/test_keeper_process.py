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
from daemon.model.keeper_messages import (
    Attach,
    Exited,
    Ping,
    Pong,
    Quit,
    Spawn,
    Spawned,
    SpawnFailed,
    State,
    decode,
    encode,
)
from daemon.model.pids import alive

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
            daemon.send(encode(Quit()))
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
    argv = (sys.executable, "-c", "import time; time.sleep(60)")
    log = str(tmp_path / "sleeper.log")
    daemon.send(encode(Spawn("sleeper", 1, argv, env={}, cwd=str(tmp_path), log=log)))
    reply = decode(daemon.recv())
    assert isinstance(reply, Spawned), reply
    return reply.pid


def test_the_keeper_answers_each_ping(keeper: Started) -> None:
    thread, daemon, _ = keeper
    daemon.send(encode(Ping()))
    assert decode(daemon.recv()) == Pong()
    daemon.send(encode(Quit()))
    thread.join(10)
    assert not thread.is_alive()


GARBAGE = [
    b"[" * 2200,
    b'{"t":"signal","node":"x","sig":[1]}',
    b'{"t":"spawned","node":"x","generation":1,"pid":1e400}',
    b'{"t":"signal","node":"x","sig":1000000000000000000000000000000}',
    b"\xff\xfe\x00garbage",
    encode(Pong()),  # well formed, but only a keeper sends it
]


def test_the_keeper_survives_garbage_with_one_line_each(
    keeper: Started, caplog: pytest.LogCaptureFixture
) -> None:
    thread, daemon, errors = keeper
    for payload in GARBAGE:
        daemon.send(payload)
    daemon.send_multipart([b"three", b"frames"])  # the keeper's ROUTER sees three
    daemon.send(encode(Ping()))
    assert decode(daemon.recv()) == Pong()  # alive and answering
    assert thread.is_alive()
    assert not errors
    dropped = [r for r in caplog.records if r.message.startswith("keeper: dropped")]
    assert len(dropped) == len(GARBAGE) + 1, [r.message for r in dropped]


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


def test_a_spawn_popen_cannot_pass_is_refused_and_the_keeper_serves_on(
    keeper: Started, tmp_path: Path
) -> None:
    thread, daemon, errors = keeper
    log = str(tmp_path / "bad.log")
    argv = (sys.executable, "-c", "pass")
    daemon.send(encode(Spawn("bad", 1, argv, env={"A=B": "x"}, cwd=str(tmp_path), log=log)))
    reply = decode(daemon.recv())
    assert isinstance(reply, SpawnFailed), reply  # was a ValueError out of the keeper's loop
    daemon.send(encode(Ping()))
    assert decode(daemon.recv()) == Pong()
    assert thread.is_alive()
    assert not errors


def test_a_strangers_ping_is_answered_but_redirects_no_exit_report(
    keeper: Started, tmp_path: Path
) -> None:
    """Before: any peer's ping made it the keeper's daemon, which then got the exit reports."""
    _, daemon, _ = keeper
    daemon.send(encode(Attach()))
    assert isinstance(decode(daemon.recv()), State)
    argv = (sys.executable, "-c", "import time; time.sleep(0.5)")  # ends by itself
    log = str(tmp_path / "brief.log")
    daemon.send(encode(Spawn("brief", 1, argv, env={}, cwd=str(tmp_path), log=log)))
    assert isinstance(decode(daemon.recv()), Spawned)
    stranger = daemon.context.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.setsockopt(zmq.RCVTIMEO, ANSWER_MS)
    stranger.connect("inproc://keeper")
    try:
        stranger.send(encode(Ping()))
        assert decode(stranger.recv()) == Pong()  # answered, to the one who asked
        report = decode(daemon.recv())  # the exit goes to the daemon, not the stranger
        assert isinstance(report, Exited), report
        assert (report.node, report.code) == ("brief", 0)
        assert stranger.poll(200) == 0
    finally:
        stranger.close(linger=0)
