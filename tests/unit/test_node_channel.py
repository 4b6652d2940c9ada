"""The daemon's end of the node channel, in process: every frame is decoded by the shared
total decoder; what it refuses is dropped (or, for an attach, refused) with one log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from fakes import FakeOwner

from daemon.model import routing
from daemon.model.descriptor import Input, OutputRef
from daemon.run.node_channel import NodeChannel
from daemon.run.zmq_trio import MAX_OUTBOX
from node_sdk import channel
from node_sdk.config import DataInput, Edge

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


def test_a_message_the_owner_cannot_queue_is_reported_to_the_caller(
    make_channel: Channel,
) -> None:
    node_channel, owner = make_channel()
    for _ in range(MAX_OUTBOX):
        assert node_channel.send(b"r/n/1", channel.Start())
    assert node_channel.send(b"r/n/1", channel.Stop()) is False
    assert len(owner.outgoing) == MAX_OUTBOX
    assert owner.statistics().dropped == 1


def _compact(raw: dict[str, Any]) -> bytes:
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()


EDGE = Edge("ipc:///s/x1", "viewer", "in", "backpressure", 3)


@pytest.mark.parametrize(
    ("message", "raw"),
    [
        (channel.Start(), {"t": "start"}),
        (channel.Stop(), {"t": "stop"}),
        (
            channel.UpstreamDone("in", "a/out"),
            {"t": "upstream_done", "input": "in", "source": "a/out"},
        ),
        (
            channel.ReceiverDown("viewer", True),
            {"t": "receiver_down", "node": "viewer", "restarting": True},
        ),
        (
            channel.Wire("out", EDGE),
            {"t": "wire", "output": "out", "endpoint": "ipc:///s/x1", "node": "viewer",
             "input": "in", "policy": "backpressure", "queue_size": 3},
        ),
        (
            channel.Unwire("out", "ipc:///s/x1"),
            {"t": "unwire", "output": "out", "endpoint": "ipc:///s/x1"},
        ),
        (
            channel.AddInput(DataInput("in", "ipc:///s/x2", 10, "drop_oldest", ("a/out",))),
            {"t": "add_input", "input": "in", "endpoint": "ipc:///s/x2", "queue_size": 10,
             "policy": "drop_oldest", "sources": ["a/out"]},
        ),
    ],
)  # fmt: skip
def test_typed_messages_go_out_as_the_frames_the_daemon_built_by_hand(
    make_channel: Channel, message: channel.Message, raw: dict[str, Any]
) -> None:
    """The daemon once sent these dicts: the node must get the very same bytes."""
    node_channel, owner = make_channel()
    assert node_channel.send(b"r/n/1", message)
    assert owner.outgoing == [[b"r/n/1", _compact(raw)]]
    assert channel.decode(owner.outgoing[0][1]) == message


def test_an_edge_carries_its_inputs_queue_policy_and_size() -> None:
    spec = Input(id="in", source=OutputRef(node="a", output="out"), queue_size=3,
                 queue_policy="backpressure")  # fmt: skip
    assert routing.edge_to("viewer", spec, "ipc:///s/x1") == EDGE
    assert routing.data_input(spec, OutputRef(node="a", output="out"), "ipc:///s/x1") == (
        DataInput("in", "ipc:///s/x1", 3, "backpressure", ("a/out",))
    )


@attrs.frozen
class StaticSpec:
    is_dynamic: bool = False
    connects: bool = True  # an SDK node: it speaks on the channel


@attrs.define
class StatsSlot:
    """The fields of a NodeSlot that a `stats` message touches."""

    spec: StaticSpec = attrs.field(factory=StaticSpec)
    attached: bool = False
    generation: int = 1
    last_seen: float = 0.0
    active_at: float = 0.0
    stats: dict[str, Any] | None = None
    stdout_counts: Any = None  # a keeper's counts of its `send_stdout_as` lines: none here


def test_stats_reach_the_slot_as_plain_counters(make_channel: Channel) -> None:
    slot = StatsSlot()

    def find_slot(_run: str, _node: str) -> Any:  # a NodeSlot, for what stats touch
        return slot

    node_channel, _ = make_channel()
    node_channel.find_slot = find_slot
    for received in (10, 30):
        frame = _compact({"t": "stats", "inputs": {"in": {"received": received}},
                          "outputs": {"out": {"sent": 2, "dropped": 0}}})  # fmt: skip
        node_channel.on_message([b"r/n/1", frame])
    assert slot.stats is not None
    assert slot.stats["inputs"] == {"in": {"received": 30}}
    assert slot.stats["outputs"] == {"out": {"sent": 2, "dropped": 0}}
    assert slot.last_seen > 0
    json.dumps(slot.stats)  # served as JSON by `flow node info`
