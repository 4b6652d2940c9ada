"""A large control request in parts: split by the client, joined by the daemon within a budget."""

from __future__ import annotations

import pytest

from daemon.model.errors import BadRequest
from daemon.model.parts import (
    CONTROL_FRAME_BYTES,
    END,
    PART,
    STALE_S,
    PartsJoiner,
    is_part,
    split_request,
)
from daemon.model.protocol import MAX_REQUEST_BYTES


def feed(joiner: PartsJoiner, client: bytes, frame: bytes, now: float = 0.0) -> bytes | None:
    joined = None
    for message in split_request(frame):
        assert all(len(f) <= CONTROL_FRAME_BYTES for f in message)
        assert is_part([client, *message])
        joined = joiner.add(client, message[1], last=message[0] == END, now=now)
    return joined


def test_a_small_request_is_one_frame() -> None:
    assert split_request(b"x" * CONTROL_FRAME_BYTES) == [[b"x" * CONTROL_FRAME_BYTES]]
    assert not is_part([b"id", b"x"])


def test_parts_are_joined_per_connection_and_the_budget_is_given_back() -> None:
    joiner = PartsJoiner()
    a, b = bytes(range(256)) * 2000, b"b" * (MAX_REQUEST_BYTES - 1)
    messages_a, messages_b = split_request(a), split_request(b)
    assert messages_a[0][0] == PART
    assert messages_a[-1][0] == END
    for first, second in zip(messages_a[:-1], messages_b[:-1], strict=False):
        assert joiner.add(b"A", first[1], last=False, now=0) is None
        assert joiner.add(b"B", second[1], last=False, now=0) is None
    assert joiner.add(b"A", messages_a[-1][1], last=True, now=0) == a
    assert feed(joiner, b"C", b"c" * 100_000) == b"c" * 100_000
    for message in messages_b[len(messages_a) - 1 :]:
        joined = joiner.add(b"B", message[1], last=message[0] == END, now=0)
    assert joined == b
    assert joiner.held == 0


def test_too_large_is_refused_once_and_the_rest_swallowed() -> None:
    joiner = PartsJoiner()
    messages = split_request(b"x" * (MAX_REQUEST_BYTES + 1))
    refusals = []
    for kind, chunk in messages:
        try:
            assert joiner.add(b"A", chunk, last=kind == END, now=0) is None
        except BadRequest as exc:
            refusals.append(str(exc))
    assert len(refusals) == 1
    assert "request too large" in refusals[0]
    assert joiner.held == 0
    assert feed(joiner, b"A", b"y" * 50_000) == b"y" * 50_000  # the next request is whole


def test_the_budget_for_all_connections_answers_busy() -> None:
    joiner = PartsJoiner(budget=4 * CONTROL_FRAME_BYTES)
    chunk = b"z" * CONTROL_FRAME_BYTES
    for client in (b"1", b"2", b"3", b"4"):
        joiner.add(client, chunk, last=False, now=0)
    with pytest.raises(BadRequest, match="daemon busy"):
        joiner.add(b"5", chunk, last=False, now=0)
    assert joiner.held == 4 * CONTROL_FRAME_BYTES
    assert joiner.add(b"1", b"", last=True, now=0) == chunk
    assert joiner.add(b"5", chunk, last=False, now=0) is None  # swallowed: refused already
    assert joiner.held == 3 * CONTROL_FRAME_BYTES


def test_a_sender_that_stops_halfway_is_forgotten() -> None:
    joiner = PartsJoiner()
    joiner.add(b"gone", b"x" * 1000, last=False, now=0)
    joiner.add(b"live", b"y" * 1000, last=False, now=STALE_S)
    assert joiner.expire(STALE_S + 1) == 1
    assert joiner.held == 1000
    assert joiner.add(b"live", b"!", last=True, now=STALE_S + 1) == b"y" * 1000 + b"!"
