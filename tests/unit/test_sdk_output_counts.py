"""An output counts each message the node sent once, however many edges it went out on;
its drops count per edge (docs/telemetry.md). Real sockets, one process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from node_sdk.channel import Unwire, Wire
from node_sdk.config import Edge, NodeConfig
from node_sdk.send import DROP_OLDEST_SNDHWM, OutputStatistics, Sender


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def _sender(context: zmq.Context[Any], edges: tuple[Edge, ...]) -> Sender:
    cfg = NodeConfig(
        run="r", run_name=None, node="cam", generation=1, restarts=0, daemon="ipc:///none",
        descriptor=None, config={}, inputs={}, outputs={"image": edges}, shm_threshold=0,
    )  # fmt: skip
    sender = Sender(context, cfg, send_timeout_s=1.0)
    sender.connect()
    return sender


def _pull(context: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    sock = context.socket(zmq.PULL)
    sock.linger = 0
    sock.bind(endpoint)
    return sock


def _drain(sock: zmq.Socket[Any]) -> int:
    got = 0
    while sock.poll(0):
        sock.recv_multipart()
        got += 1
    return got


def _close(sender: Sender) -> None:
    for output in sender.outputs.values():
        for edge in output.edges:
            edge.sock.close(linger=0)


def test_a_message_to_three_receivers_counts_once(
    context: zmq.Context[Any], tmp_path: Path
) -> None:
    """Two receivers from the start and an observer wired live: 30 messages are 30 sent,
    their bytes once each, and every receiver got its copy."""
    ends = [f"ipc://{tmp_path / name}" for name in ("a", "b", "observer")]
    pulls = [_pull(context, end) for end in ends]
    sender = _sender(context, tuple(Edge(e, n, "in", "drop_oldest") for e, n in
                                    zip(ends[:2], ("a", "b"), strict=True)))  # fmt: skip
    for n in range(10):
        sender.send_output("image", b"frame-%02d" % n)
    sender.rewires.append(Wire("image", Edge(ends[2], "~observer", "in", "drop_oldest")))
    for n in range(10, 30):
        sender.send_output("image", b"frame-%02d" % n)
    assert sender.statistics() == {"image": OutputStatistics(sent=30, dropped=0)}
    assert sender.bytes_sent() == {"image": 30 * len(b"frame-00")}
    got = [0, 0, 0]
    for _ in range(200):  # a bound on the wait, not a speed test
        got = [g + _drain(p) for g, p in zip(got, pulls, strict=True)]
        if got == [30, 30, 20]:
            break
        pulls[0].poll(50)
    assert got == [30, 30, 20]
    # an edge unwired takes nothing of the count away
    sender.rewires.append(Unwire("image", ends[2]))
    sender.send_output("image", b"frame-30")
    assert sender.statistics()["image"].sent == 31
    _close(sender)
    for sock in pulls:
        sock.close(linger=0)


def test_drops_count_per_edge_and_a_message_no_edge_took_is_not_sent(
    context: zmq.Context[Any], tmp_path: Path
) -> None:
    """One receiver reads; one is never there, so its edge fills and then drops: every
    message is sent once, and the drops are that edge's. An output whose only edge
    drops a message has not sent it: with one receiver, sent + dropped is what the node
    sent."""
    read, absent = f"ipc://{tmp_path / 'read'}", f"ipc://{tmp_path / 'absent'}"
    pull = _pull(context, read)
    count = DROP_OLDEST_SNDHWM + 100
    sender = _sender(context, (Edge(read, "a", "in", "drop_oldest"),
                               Edge(absent, "b", "in", "drop_oldest")))  # fmt: skip
    for n in range(count):
        sender.send_output("image", b"%05d" % n)
        # the reader keeps up: each message read before the next is sent, so its edge
        # never drops (a loaded machine's IO thread may lag a drain that does not wait)
        assert pull.poll(10_000), f"message {n} never came"
        pull.recv_multipart()
    stats = sender.statistics()["image"]
    assert stats.sent == count
    assert 0 < stats.dropped <= count - DROP_OLDEST_SNDHWM + 1  # the absent edge's only
    assert sender.bytes_sent() == {"image": 5 * count}
    _close(sender)
    pull.close(linger=0)

    alone = _sender(context, (Edge(f"ipc://{tmp_path / 'nobody'}", "c", "in", "drop_oldest"),))
    for n in range(count):
        alone.send_output("image", b"%05d" % n)
    stats = alone.statistics()["image"]
    assert stats.dropped > 0
    assert stats.sent + stats.dropped == count
    assert alone.bytes_sent() == {"image": 5 * stats.sent}
    _close(alone)
