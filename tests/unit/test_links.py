"""Which sources a broken tcp:// link closes (node_sdk/links.py), driven by monitor events
sent on a real inproc PAIR, with an inbox stand-in that records what it is told."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from node_sdk import links
from node_sdk.links import EVENT, Links


class Closes:
    """The inbox's `close_source`, recorded; `ended`: the sources at rest (closed, or
    between generations)."""

    def __init__(self) -> None:
        self.closed: list[tuple[str, str]] = []
        self.ended: set[tuple[str, str]] = set()

    def close_source(self, input_id: str, source: str, generation: int = 0) -> None:
        self.closed.append((input_id, source))

    def at_rest(self, input_id: str, source: str) -> bool:
        return (input_id, source) in self.ended


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


def make(ctx: zmq.Context[Any], grace_s: float = 0.0) -> tuple[Links, Closes, Any]:
    """A Links whose monitor of input `in` is fed by the returned `event(kind, fd)`."""
    feed, monitor = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    endpoint = f"inproc://monitor-{id(feed)}"
    feed.bind(endpoint)
    monitor.connect(endpoint)
    closes = Closes()
    watched = Links(closes, grace_s)  # type: ignore[arg-type]
    watched.monitors[monitor] = "in"

    def event(kind: int, fd: int) -> None:
        feed.send_multipart([EVENT.pack(kind, fd), b"tcp://x"])
        assert monitor.poll(1000)
        watched.on_event(monitor)

    return watched, closes, event


@pytest.fixture
def wired(ctx: zmq.Context[Any]) -> tuple[Links, Closes, Any]:
    return make(ctx)  # held by the fixture: its sockets are closed by the context's end


@pytest.fixture
def graced(ctx: zmq.Context[Any]) -> tuple[Links, Closes, Any]:
    return make(ctx, grace_s=60.0)


def test_a_broken_connection_closes_the_sources_heard_on_it(wired: Any) -> None:
    watched, closes, event = wired
    event(zmq.EVENT_ACCEPTED, 13)
    event(zmq.EVENT_ACCEPTED, 14)
    watched.heard("in", "a/out", 13)
    watched.heard("in", "b/out", 14)
    event(zmq.EVENT_DISCONNECTED, 13)
    assert watched.settle("in")
    assert closes.closed == [("in", "a/out")]  # b's connection is alive
    assert watched.next_deadline() is None


def test_a_source_whose_stream_ended_before_its_connection_closed_is_not_broken(
    wired: Any,
) -> None:
    """A dynamic node that detached, a node stopped for a restart, a run's stop: the stream
    or its generation ended first, and its connection closing is no broken link (no
    warning says one is)."""
    watched, closes, event = wired
    event(zmq.EVENT_ACCEPTED, 13)
    watched.heard("in", "a/out", 13)
    watched.heard("in", "b/out", 13)
    closes.ended.add(("in", "a/out"))
    event(zmq.EVENT_DISCONNECTED, 13)
    assert watched.settle("in")
    assert closes.closed == [("in", "b/out")]


def test_a_source_heard_on_a_new_connection_is_not_closed(graced: Any) -> None:
    watched, closes, event = graced
    event(zmq.EVENT_ACCEPTED, 13)
    watched.heard("in", "a/out", 13)
    event(zmq.EVENT_DISCONNECTED, 13)
    assert watched.next_deadline() is not None  # cut, waiting for the grace
    event(zmq.EVENT_ACCEPTED, 15)
    watched.heard("in", "a/out", 15)  # back, on a new connection
    assert watched.next_deadline() is None
    assert not watched.settle("in")
    assert closes.closed == []


def test_a_late_message_of_a_dead_connection_cuts_its_source(
    wired: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "LATE_RECHECK_S", 0.0)
    watched, closes, event = wired
    event(zmq.EVENT_ACCEPTED, 13)
    event(zmq.EVENT_DISCONNECTED, 13)  # before its only message was drained
    watched.heard("in", "a/out", 13)
    assert watched.settle("in")
    assert closes.closed == [("in", "a/out")]


def test_a_new_connection_on_a_reused_descriptor_is_not_taken_for_the_dead_one(
    wired: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first message may be read before this thread saw its accept: the cut is looked
    at again, and dropped once the accept is seen."""
    monkeypatch.setattr(links, "LATE_RECHECK_S", 0.0)
    watched, closes, event = wired
    event(zmq.EVENT_ACCEPTED, 13)
    event(zmq.EVENT_DISCONNECTED, 13)
    watched.heard("in", "b/out", 13)  # b's first message, on a new connection on fd 13
    event(zmq.EVENT_ACCEPTED, 13)  # ... whose accept comes in after
    assert not watched.settle("in")
    assert closes.closed == []
    event(zmq.EVENT_DISCONNECTED, 13)  # and b is still followed on it
    assert watched.settle("in")
    assert closes.closed == [("in", "b/out")]
