"""The keeper's `send_stdout_as` output on real sockets: held lines, their bound, their order
across generations."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from daemon.keeper.stdout_output import (
    END_BOUND_S,
    HELD_LINES,
    EndedOutputs,
    StdoutOutput,
    end_context,
)
from daemon.model.keeper_messages import (
    Edge,
    StdoutAs,
    StdoutKeys,
    UnwireStdout,
    WireStdout,
)
from node_sdk.frames import decode_data
from node_sdk.wire import KIND_EOS

ENDPOINT = "inproc://sink"


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)  # a failed test may leave sockets open


@pytest.fixture
def pull(context: zmq.Context[zmq.Socket[bytes]]) -> Iterator[zmq.Socket[bytes]]:
    """The receiving input, bound at ENDPOINT (the start barrier waits for that)."""
    socket = context.socket(zmq.PULL)
    socket.bind(ENDPOINT)
    yield socket
    socket.close(linger=0)


def receive(pull: zmq.Socket[bytes], count: int) -> list[tuple[int, int, str]]:
    """`count` messages: (generation, seq, value or "EOS"), and no more."""
    got = []
    while len(got) < count:
        assert pull.poll(5000), f"only {len(got)} of {count} messages came"
        message = decode_data(pull.recv_multipart())
        value = "EOS" if message.header.kind == KIND_EOS else str(message.value)
        got.append((message.header.generation, message.header.seq, value))
    assert not pull.poll(100), "more came than were sent"
    return got


def stdout_as(held: bool) -> StdoutAs:
    edge = Edge(ENDPOINT, "sink", "line", "drop_oldest", 10)
    return StdoutAs("ticker/lines", (edge,), restartable=True, held=held)


def test_held_lines_wait_for_the_release_and_the_oldest_go_first(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes]
) -> None:
    ended = EndedOutputs()
    output = ended.output_for(context, "ticker", 1, stdout_as(held=True))
    assert output is not None
    for i in range(HELD_LINES + 5):
        output.send_line(f"line {i + 1}")
    assert output.counts.dropped == 5
    assert not pull.poll(100), "a held line went out"
    output.release()
    output.send_line("after")
    got = receive(pull, HELD_LINES + 1)
    # numbered as printed: the five dropped leave a gap the receiver counts
    assert got[0] == (1, 6, "line 6")
    assert got[HELD_LINES - 1] == (1, HELD_LINES + 5, f"line {HELD_LINES + 5}")
    assert got[-1] == (1, HELD_LINES + 6, "after")
    output.close()


def test_generations_that_end_before_the_release_arrive_in_order(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes]
) -> None:
    ended = EndedOutputs()
    first = ended.output_for(context, "ticker", 1, stdout_as(held=True))
    assert first is not None
    first.send_line("one")
    ended.keep("ticker", first)  # generation 1 exits before the barrier
    second = ended.output_for(context, "ticker", 2, stdout_as(held=True))
    assert second is not None
    assert second is not first
    second.send_line("two")
    second.release()
    ended.keep("ticker", second)
    third = ended.output_for(context, "ticker", 3, stdout_as(held=False))
    assert third is not None
    third.send_line("three")
    ended.keep("ticker", third)
    assert receive(pull, 6) == [
        (1, 1, "one"), (1, 1, "EOS"), (2, 1, "two"), (2, 1, "EOS"), (3, 1, "three"),
        (3, 1, "EOS"),
    ]  # fmt: skip
    ended.close_all()


def test_new_receivers_get_new_sockets(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    ended = EndedOutputs()
    first = ended.output_for(context, "ticker", 1, stdout_as(held=False))
    assert isinstance(first, StdoutOutput)
    ended.keep("ticker", first)
    wider = StdoutAs(
        "ticker/lines",
        (*stdout_as(held=False).edges, Edge("inproc://other", "other", "line", "drop_oldest", 10)),
        restartable=True,
    )
    second = ended.output_for(context, "ticker", 2, wider)
    assert second is not None
    assert second.endpoints() == [ENDPOINT, "inproc://other"]
    assert first.edges == []  # closed
    second.close()


OBSERVER = "inproc://observer"
OBSERVER_EDGE = Edge(OBSERVER, "observer-ab12cd", "observe", "drop_oldest", 64)


@pytest.fixture
def observer(context: zmq.Context[zmq.Socket[bytes]]) -> Iterator[zmq.Socket[bytes]]:
    """A receiver wired while the node runs (an observer), bound at OBSERVER."""
    socket = context.socket(zmq.PULL)
    socket.bind(OBSERVER)
    yield socket
    socket.close(linger=0)


def test_a_receiver_wired_while_the_node_runs_gets_what_follows_until_unwired(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes], observer: zmq.Socket[bytes]
) -> None:
    outputs = EndedOutputs()
    output = outputs.output_for(context, "ticker", 1, stdout_as(held=False))
    assert output is not None
    output.send_line("before")
    for _ in range(2):  # a second wire of the same endpoint is one edge still
        outputs.rewire(context, output, WireStdout("ticker", OBSERVER_EDGE))
    output.send_line("watched")
    assert receive(observer, 1) == [(1, 1, "watched")]  # numbered from its own start
    outputs.rewire(context, output, UnwireStdout("ticker", OBSERVER))
    output.send_line("after")
    assert not observer.poll(200), "a line went to an unwired receiver"
    assert receive(pull, 3) == [(1, 1, "before"), (1, 2, "watched"), (1, 3, "after")]
    assert output.endpoints() == [ENDPOINT]
    output.close()


def test_a_receiver_wired_between_generations_is_kept_by_the_next(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes], observer: zmq.Socket[bytes]
) -> None:
    outputs = EndedOutputs()
    first = outputs.output_for(context, "ticker", 1, stdout_as(held=False))
    assert first is not None
    outputs.keep("ticker", first)  # generation 1 ended; the node restarts
    outputs.rewire(context, None, WireStdout("ticker", OBSERVER_EDGE))  # on the ended output
    # the next spawn carries the run's live edges: the same receivers, in another order
    spawn = StdoutAs("ticker/lines", (OBSERVER_EDGE, *stdout_as(held=False).edges),
                     restartable=True)  # fmt: skip
    second = outputs.output_for(context, "ticker", 2, spawn)
    assert second is not None
    assert sorted(second.endpoints()) == sorted([ENDPOINT, OBSERVER])
    second.send_line("two")
    assert receive(observer, 1) == [(2, 1, "two")]  # once: one socket per receiver
    assert receive(pull, 2) == [(1, 0, "EOS"), (2, 1, "two")]
    second.close()


def test_a_live_receivers_numbers_and_end_are_its_own_in_each_generation(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes], observer: zmq.Socket[bytes]
) -> None:
    outputs = EndedOutputs()
    first = outputs.output_for(context, "ticker", 1, stdout_as(held=False))
    assert first is not None
    for line in ("one", "two"):
        first.send_line(line)
    outputs.rewire(context, first, WireStdout("ticker", OBSERVER_EDGE))
    first.send_line("three")
    outputs.keep("ticker", first)  # generation 1 ends: its end-of-stream, after 3 lines
    spawn = StdoutAs("ticker/lines", (*stdout_as(held=False).edges, OBSERVER_EDGE),
                     restartable=True)  # fmt: skip
    second = outputs.output_for(context, "ticker", 2, spawn)
    assert second is not None
    second.send_line("again")
    # the observer's own numbers: 1 line, then an end-of-stream that says 1, then
    # generation 2 from 1 like every receiver of it
    assert receive(observer, 3) == [(1, 1, "three"), (1, 1, "EOS"), (2, 1, "again")]
    assert receive(pull, 5) == [(1, 1, "one"), (1, 2, "two"), (1, 3, "three"), (1, 3, "EOS"),
                                (2, 1, "again")]  # fmt: skip
    second.close()


def test_an_endpoint_zmq_refuses_leaves_the_other_edges(
    context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes]
) -> None:
    outputs = EndedOutputs()
    output = outputs.output_for(context, "ticker", 1, stdout_as(held=False))
    assert output is not None
    bad = Edge("nonsense://x", "observer-ab12cd", "observe", "drop_oldest", 64)
    outputs.rewire(context, output, WireStdout("ticker", bad))
    assert output.endpoints() == [ENDPOINT]
    output.send_line("still")
    assert receive(pull, 1) == [(1, 1, "still")]
    output.close()


class SlowZap(threading.Thread):
    """A receiver context's ZAP handler that admits every peer after `delay_s`: a receiver
    that is there but slow to take a connection (a loaded machine)."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], delay_s: float) -> None:
        super().__init__(daemon=True)
        self.socket = context.socket(zmq.REP)
        self.socket.bind("inproc://zeromq.zap.01")
        self.delay_s = delay_s

    def run(self) -> None:
        try:  # until its context is terminated (ETERM): its socket is closed by this thread
            with contextlib.suppress(zmq.ZMQError):
                while True:
                    version, sequence, *_ = self.socket.recv_multipart()
                    time.sleep(self.delay_s)
                    self.socket.send_multipart([version, sequence, b"200", b"OK", b"peer", b""])
        finally:
            self.socket.close(linger=0)


def test_the_keepers_end_waits_for_a_receiver_still_taking_the_connection(
    context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    """A tcp:// receiver whose handshake takes longer than a fixed linger (0.5 s) still gets
    every line and the end-of-stream when the keeper ends right after its node."""
    server_public, server_secret = zmq.curve_keypair()
    public, secret = zmq.curve_keypair()
    (tmp_path / "machine.key").write_bytes(secret)
    (tmp_path / "machine.key").chmod(0o600)
    receiving: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    zap = SlowZap(receiving, delay_s=1.0)
    zap.start()
    pull = receiving.socket(zmq.PULL)
    try:
        pull.curve_server = True
        pull.curve_secretkey = server_secret
        pull.zap_domain = b"flow"
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        edge = Edge(f"tcp://127.0.0.1:{port}", "recorder", "lines", "drop_oldest", 100,
                    server_key=server_public.decode())  # fmt: skip
        keys = StdoutKeys(public.decode(), str(tmp_path / "machine.key"), 1000, 5000)
        outputs = EndedOutputs()
        output = outputs.output_for(
            context, "counting", 1, StdoutAs("counting/lines", (edge,), tcp=keys)
        )
        assert output is not None
        for line in ("1", "2", "3"):
            output.send_line(line)
        outputs.keep("counting", output)  # the node ended: its end-of-stream is queued
        started = time.monotonic()
        outputs.close_all()
        assert time.monotonic() - started < END_BOUND_S + 0.5
        assert receive(pull, 4) == [(1, 1, "1"), (1, 2, "2"), (1, 3, "3"), (1, 3, "EOS")]
    finally:
        pull.close(linger=0)
        receiving.term()  # wakes the handler's thread, which closes its socket
        zap.join()


def test_the_keepers_end_does_not_wait_out_the_linger_of_a_receiver_that_is_gone(
    context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    """A receiver killed with its socket file left: its edge lingers while no one takes its
    lines; the keeper's context ends without waiting that linger out (END_BOUND_S)."""
    stale = tmp_path / "gone"
    with socket.socket(socket.AF_UNIX) as killed:
        killed.bind(str(stale))  # closed without unlinking: the file stays, nobody listens
    ending: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    outputs = EndedOutputs()
    edge = Edge(f"ipc://{stale}", "sink", "lines", "drop_oldest", 100)
    output = outputs.output_for(ending, "counting", 1, StdoutAs("counting/lines", (edge,)))
    assert output is not None
    output.send_line("1")
    outputs.keep("counting", output)
    started = time.monotonic()
    outputs.close_all()
    end_context(ending, outputs.lingering)
    assert time.monotonic() - started < END_BOUND_S * 0.75
