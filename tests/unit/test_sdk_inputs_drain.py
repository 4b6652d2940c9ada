"""`Inputs.drain_all`, which the node's thread runs before each wait: an input with nothing
queued is skipped on zmq's word (`ZMQ_EVENTS`), not read until `Again`; a message is
taken; with tcp:// inputs every socket is read (reading one empty settles a broken link)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from node_sdk.config import DataInput
from node_sdk.inbox import Inbox
from node_sdk.inputs import Inputs, bind_input
from node_sdk.wire import KIND_BYTES, pack_header

BOUND_S = 10.0  # a safety bound on every wait, never an assertion about speed


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Inputs, Inbox, zmq.Socket[Any]]]:
    context: zmq.Context[zmq.Socket[Any]] = zmq.Context()
    spec = DataInput("in", f"ipc://{tmp_path}/in", 10, "drop_oldest", ("a/out",))
    inbox = Inbox([spec], discard=lambda _: None)
    sock = bind_input(context, spec, 1000)
    push = context.socket(zmq.PUSH)
    push.connect(spec.endpoint)
    try:
        yield Inputs(inbox, [(spec, sock)]), inbox, push
    finally:
        push.close(linger=0)
        sock.close(linger=0)
        context.term()


def _count_drains(inputs: Inputs, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    drain = inputs.drain

    def counted(*args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        return drain(*args, **kwargs)

    monkeypatch.setattr(inputs, "drain", counted)
    return calls


def test_an_empty_input_is_not_read(
    wired: tuple[Inputs, Inbox, zmq.Socket[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, _, _ = wired
    calls = _count_drains(inputs, monkeypatch)
    for _ in range(5):
        assert inputs.drain_all() is False
    assert calls == []


def test_a_queued_message_is_taken(
    wired: tuple[Inputs, Inbox, zmq.Socket[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, inbox, push = wired
    calls = _count_drains(inputs, monkeypatch)
    header = pack_header(KIND_BYTES, 1, 1, time.time_ns(), b'{"s":"a/out"}')
    push.send_multipart([header, b"hello"])
    deadline = time.monotonic() + BOUND_S
    while not inputs.drain_all():
        assert time.monotonic() < deadline, "the message never came"
        time.sleep(0.001)
    entry, _ = inbox.pop()
    assert entry is not None
    assert calls
    assert inputs.drain_all() is False  # and nothing more


def test_with_tcp_inputs_every_socket_is_read(
    wired: tuple[Inputs, Inbox, zmq.Socket[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, _, _ = wired

    class Links:  # stands for links.Links: only whether a node has one matters here
        pass

    inputs.links = Links()
    calls = _count_drains(inputs, monkeypatch)
    inputs.drain_all()
    assert calls == [1]
