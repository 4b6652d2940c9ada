"""The control socket's per-client reply queues: order kept, retried when due, bounded."""

from __future__ import annotations

import pytest

from daemon.model.parts import END, PART
from daemon.run.peer_outbox import FIRST_RETRY_S, LAST_RETRY_S, PeerOutbox, Sent


class Peers:
    """A stand-in for libzmq: each peer's pipe takes `room[peer]` more messages."""

    def __init__(self) -> None:
        self.room: dict[bytes, int] = {}
        self.gone: set[bytes] = set()
        self.delivered: list[tuple[bytes, bytes]] = []

    def send(self, frames: list[bytes]) -> Sent:
        peer = frames[0]
        if peer in self.gone:
            return Sent.GONE
        if self.room.get(peer, 0) <= 0:
            return Sent.FULL
        self.room[peer] -= 1
        self.delivered.append((peer, frames[-1]))
        return Sent.SENT


def reply(peer: bytes, name: str, size: int = 10) -> list[bytes]:
    """A reply of `size` bytes in all: what is held is counted with the peer's id."""
    return [peer, name.encode().ljust(size - len(peer), b".")]


def test_a_refused_reply_waits_and_goes_in_order_once_the_peer_reads() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control")
    zmq.room[b"a"] = 1
    for i in range(4):
        assert outbox.offer(reply(b"a", f"r{i}"), 0.0, zmq.send) == 0
    assert [m[:2] for _, m in zmq.delivered] == [b"r0"]
    assert outbox.queued == 3
    assert outbox.held == 30
    assert outbox.next_due == FIRST_RETRY_S
    outbox.retry(FIRST_RETRY_S / 2, zmq.send)  # not due yet: nothing tried
    assert outbox.queued == 3
    zmq.room[b"a"] = 2
    outbox.retry(FIRST_RETRY_S, zmq.send)
    assert [m[:2] for _, m in zmq.delivered] == [b"r0", b"r1", b"r2"]
    # a new reply goes behind the waiting one, never before it
    zmq.room[b"a"] = 5
    outbox.offer(reply(b"a", "r4"), 0.01, zmq.send)
    assert [m[:2] for _, m in zmq.delivered][-1] == b"r2"
    outbox.retry(1.0, zmq.send)
    assert [m[:2] for _, m in zmq.delivered] == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert outbox.queued == 0
    assert outbox.held == 0
    assert outbox.next_due is None
    assert outbox.dropped == 0


def test_retries_back_off_per_peer_up_to_the_last_delay() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control")
    outbox.offer(reply(b"slow", "r"), 0.0, zmq.send)
    now, gaps = 0.0, []
    for _ in range(8):
        assert outbox.next_due is not None
        gaps.append(round(outbox.next_due - now, 4))
        now = outbox.next_due
        outbox.retry(now, zmq.send)
    assert gaps[0] == FIRST_RETRY_S
    assert gaps == sorted(gaps)
    assert gaps[-1] == LAST_RETRY_S
    assert outbox.queued == 1  # still kept: a slow reader is not a reason to drop


def test_a_peer_that_left_loses_its_replies_counted_as_unreachable() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control")
    for i in range(3):
        outbox.offer(reply(b"a", f"r{i}"), 0.0, zmq.send)
    zmq.gone.add(b"a")
    outbox.retry(1.0, zmq.send)
    assert outbox.unreachable == 3
    assert outbox.queued == 0
    assert outbox.held == 0
    assert outbox.offer(reply(b"a", "late"), 1.0, zmq.send) == 0
    assert outbox.unreachable == 4
    assert outbox.dropped == 0


def test_a_client_over_its_bound_loses_its_oldest_replies_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control", peer_bytes=100, total_bytes=1000)
    dropped = sum(outbox.offer(reply(b"hog", f"r{i}", 40), 0.0, zmq.send) for i in range(6))
    assert dropped == 4
    assert outbox.dropped == 4
    assert outbox.queued == 2
    assert outbox.held == 80
    zmq.room[b"hog"] = 10
    outbox.retry(1.0, zmq.send)
    assert [m[:2] for _, m in zmq.delivered] == [b"r4", b"r5"]  # the newest two were kept
    assert caplog.text.count("dropping the oldest unread replies to client b'hog'") == 1


def test_over_the_total_the_client_holding_most_loses_first() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control", peer_bytes=1000, total_bytes=200)
    for i in range(4):
        outbox.offer(reply(b"hog", f"h{i}", 40), 0.0, zmq.send)
    outbox.offer(reply(b"calm", "c0", 40), 0.0, zmq.send)
    assert outbox.dropped == 0
    assert outbox.held == 200
    outbox.offer(reply(b"calm", "c1", 40), 0.0, zmq.send)  # 240: the hog gives one up
    assert outbox.dropped == 1
    assert outbox.held == 200
    zmq.room.update({b"hog": 10, b"calm": 10})
    outbox.retry(1.0, zmq.send)
    names = [(peer, m[:2]) for peer, m in zmq.delivered]
    assert names == [(b"hog", b"h1"), (b"hog", b"h2"), (b"hog", b"h3"),
                     (b"calm", b"c0"), (b"calm", b"c1")]  # fmt: skip
    assert outbox.held == 0


def parts(peer: bytes, name: str, count: int) -> list[list[bytes]]:
    """A reply in `count` parts, as `daemon.model.parts.split_request` cuts one."""
    chunks = [f"{name}.{i}".encode() for i in range(count)]
    return [[peer, PART, chunk] for chunk in chunks[:-1]] + [[peer, END, chunks[-1]]]


def test_a_reply_in_parts_waits_whole_and_one_cut_is_ended_with_an_empty_end() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control", peer_bytes=60, total_bytes=1000)
    zmq.room[b"a"] = 1  # libzmq takes the first part of the first reply only
    for message in parts(b"a", "x", 3):
        outbox.offer(message, 0.0, zmq.send)
    assert zmq.delivered == [(b"a", b"x.0")]
    assert outbox.queued == 1
    for message in parts(b"a", "y", 3):  # over 60 bytes: a reply must go
        outbox.offer(message, 0.0, zmq.send)
    # the started one cannot be taken back: its rest becomes one empty END
    assert outbox.dropped == 1
    assert outbox.queued == 2
    zmq.room[b"a"] = 10
    outbox.retry(1.0, zmq.send)
    assert zmq.delivered == [(b"a", b"x.0"), (b"a", b""), (b"a", b"y.0"), (b"a", b"y.1"),
                             (b"a", b"y.2")]  # fmt: skip
    assert outbox.held == 0


def test_replies_in_parts_not_started_are_dropped_whole() -> None:
    zmq = Peers()
    outbox = PeerOutbox(name="control", peer_bytes=100, total_bytes=1000)
    for name in ("x", "y", "z"):
        for message in parts(b"a", name, 3):
            outbox.offer(message, 0.0, zmq.send)
    assert outbox.dropped == 1  # three replies of 39 bytes: the oldest went whole
    zmq.room[b"a"] = 10
    outbox.retry(1.0, zmq.send)
    assert [m for _, m in zmq.delivered] == [b"y.0", b"y.1", b"y.2", b"z.0", b"z.1", b"z.2"]
