"""The daemon's end of the node channel, in process: every frame is decoded by the shared
total decoder; what it refuses is dropped (or, for an attach, refused) with one log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fakes import FakeOwner

from daemon.run.node_channel import NodeChannel
from daemon.run.zmq_trio import MAX_OUTBOX
from node_sdk import channel

NESTED = b"[" * 1100 + b"]" * 1100


Channel = Callable[..., tuple[NodeChannel, FakeOwner]]


@pytest.fixture
def make_channel(make_owner: Callable[[], FakeOwner]) -> Channel:
    """A node channel over a `FakeOwner`; `attach` gets the attach requests it grants."""

    def make(attach: Any = None) -> tuple[NodeChannel, FakeOwner]:
        owner = make_owner()
        made = NodeChannel(owner=owner, find_slot=lambda _run, _node: None, attach=attach)
        return made, owner

    return make


@pytest.mark.parametrize(
    "frames",
    [
        [b"r/n/1", NESTED],
        [b"r/n/1", b'{"t":"hello","run":"r","node":"n","generation":1,"pid":1e400}'],
        [b"r/n/1", b'{"t":"stats","inputs":{"in":{"received":true}},"outputs":{}}'],
        [b"r/n/x", b'{"t":"bye"}'],
        [b"r/n/\xb2", b'{"t":"bye"}'],
        [b"r/n/99999999999", b'{"t":"bye"}'],
        [b"only-one-frame"],
    ],
)
def test_a_malformed_frame_is_dropped_with_one_line(
    make_channel: Channel, frames: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    node_channel, owner = make_channel()
    with caplog.at_level(logging.WARNING, logger="daemon.run.node_channel"):
        node_channel.on_message(frames)
    assert len(caplog.records) == 1
    assert "dropped" in caplog.records[0].getMessage()
    assert owner.outgoing == []


@pytest.mark.parametrize("pid", [[1], "1e400", 10**30, "abc", True, 0, 2**22 + 1])
def test_a_malformed_attach_is_refused_in_one_line(
    make_channel: Channel, pid: Any, caplog: pytest.LogCaptureFixture
) -> None:
    granted: list[channel.Attach] = []
    node_channel, owner = make_channel(attach=granted.append)
    frame = json.dumps({"t": "attach", "node": "v", "dataflow": None, "pid": pid}).encode()
    frame = frame.replace(b'"1e400"', b"1e400")
    with caplog.at_level(logging.WARNING, logger="daemon.run.node_channel"):
        node_channel.on_message([b"attach/1/ab", frame])
    assert granted == []
    [(identity, reply)] = owner.outgoing
    assert identity == b"attach/1/ab"
    refused = channel.decode(reply)
    assert isinstance(refused, channel.Refused)
    assert refused.error.startswith("malformed attach request: ")
    assert len(caplog.records) == 1


def test_a_malformed_untyped_message_is_not_sent(
    make_channel: Channel, caplog: pytest.LogCaptureFixture
) -> None:
    node_channel, owner = make_channel()
    with caplog.at_level(logging.ERROR, logger="daemon.run.node_channel"):
        sent = node_channel.send(b"r/n/1", {"t": "wire", "output": "o"})  # no endpoint, node...
    assert sent is False
    assert owner.outgoing == []
    assert "not sending a malformed message" in caplog.records[0].getMessage()
    assert node_channel.send(b"r/n/1", {"t": "upstream_done", "input": "in", "source": "a/out"})
    assert node_channel.send(b"r/n/1", channel.Stop())
    assert [json.loads(frames[1])["t"] for frames in owner.outgoing] == ["upstream_done", "stop"]


def test_a_message_the_owner_cannot_queue_is_reported_to_the_caller(
    make_channel: Channel,
) -> None:
    node_channel, owner = make_channel()
    for _ in range(MAX_OUTBOX):
        assert node_channel.send(b"r/n/1", channel.Start())
    assert node_channel.send(b"r/n/1", channel.Stop()) is False
    assert len(owner.outgoing) == MAX_OUTBOX
    assert owner.statistics().dropped == 1
