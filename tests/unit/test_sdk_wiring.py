"""Live wiring in the SDK: decoding `wire`/`unwire`/`add_input`, applying them, inputs added."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

import pytest

from node_sdk import (
    EventType,
    InputStatistics,
    NodeError,
    NodeStatistics,
    OutputStatistics,
    StopCause,
    channel,
)
from node_sdk.channel import AddInput, ReceiverDown, Rewire, Unwire, Wire
from node_sdk.config import DataInput, Edge
from node_sdk.inbox import Frame, Inbox
from node_sdk.receiver import handle_control
from node_sdk.wire import KIND_BYTES, KIND_EOS
from node_sdk.wiring import apply_rewires, stats_message


def _msg(message: dict[str, Any]) -> channel.Message:
    """A daemon message as the receiver thread gets it: through the channel's decoder."""
    return channel.decode(json.dumps(message).encode())


def _inbox(inputs: list[DataInput]) -> Inbox:
    return Inbox(inputs, lambda _descriptor: None)


def test_wire_and_unwire_decode() -> None:
    wire = {"t": "wire", "output": "out", "endpoint": "ipc:///s/x1", "policy": "backpressure",
            "queue_size": 4, "node": "viewer", "input": "in"}  # fmt: skip
    assert _msg(wire) == Wire("out", Edge("ipc:///s/x1", "viewer", "in", "backpressure", 4))
    short = {"t": "wire", "output": "out", "endpoint": "e", "node": "v", "input": "i"}
    assert _msg(short) == Wire("out", Edge("e", "v", "i", "drop_oldest", 10))
    unwire = {"t": "unwire", "output": "out", "endpoint": "ipc:///s/x1"}
    assert _msg(unwire) == Unwire("out", "ipc:///s/x1")


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"t": "wire", "endpoint": "e", "node": "v", "input": "i"}, r"\$\.output must be"),
        ({"t": "unwire", "output": "out"}, r"\$\.endpoint must be"),
        ({"t": "wire", "output": "o", "endpoint": "e", "node": "v"}, r"\$\.input must be"),
        (
            {
                "t": "wire",
                "output": "o",
                "endpoint": "e",
                "node": "v",
                "input": "i",
                "policy": "lossy",
            },
            "'lossy' is not one of",
        ),
        (
            {
                "t": "wire",
                "output": "o",
                "endpoint": "e",
                "node": "v",
                "input": "i",
                "queue_size": 0,
            },
            r"\$\.queue_size must be",
        ),
    ],
)
def test_bad_rewires_are_refused(message: dict[str, Any], problem: str) -> None:
    with pytest.raises(NodeError, match=problem):
        _msg(message)


def test_add_input_decodes() -> None:
    message = {"t": "add_input", "input": "extra", "endpoint": "ipc:///s/x2", "queue_size": 3,
               "policy": "drop_oldest", "sources": ["a/out", "b/out"]}  # fmt: skip
    assert _msg(message) == AddInput(
        DataInput("extra", "ipc:///s/x2", 3, "drop_oldest", ("a/out", "b/out"))
    )
    with pytest.raises(NodeError, match=r"\$\.sources must be"):
        _msg({**message, "sources": "a/out"})
    with pytest.raises(NodeError, match=r"\$\.input must be"):
        _msg({**message, "input": ""})


class FakeSock:
    def __init__(self) -> None:
        self.closed_with: int | None = None

    def close(self, linger: int | None = None) -> None:
        self.closed_with = linger


class FakeEdge:
    def __init__(self, endpoint: str, node: str = "v") -> None:
        self.endpoint = endpoint
        self.node = node
        self.gone = False
        self.seq = 0
        self.sock = FakeSock()
        self.link = None  # a tcp:// backpressure edge's reconnect watch


class FakeOutput:
    def __init__(self, edges: list[FakeEdge]) -> None:
        self.edges: list[Any] = edges


def test_rewires_change_the_edges_of_an_output(caplog: pytest.LogCaptureFixture) -> None:
    first = FakeEdge("ipc:///s/a")
    out = FakeOutput([first])
    outputs = {"out": out, "other": FakeOutput([])}
    connected: list[Edge] = []

    def connect(edge: Edge) -> FakeEdge:
        connected.append(edge)
        return FakeEdge(edge.endpoint)

    forgotten: list[str] = []
    pending: deque[Rewire | ReceiverDown] = deque(
        [
            Wire("out", Edge("ipc:///s/b", "v", "in", "drop_oldest", 10)),
            Wire("out", Edge("ipc:///s/b", "v", "in", "drop_oldest", 10)),  # repeated
            Wire("out", Edge("ipc:///s/a", "w", "in", "drop_oldest", 10)),  # wired already
            Wire("nope", Edge("ipc:///s/c", "v", "in", "drop_oldest", 10)),  # unknown output
            Unwire("out", "ipc:///s/a"),
            Unwire("out", "ipc:///s/zzz"),  # not an edge: nothing to do
            Unwire("nope", "ipc:///s/a"),
        ]
    )
    before = out.edges
    with caplog.at_level(logging.WARNING, logger="node_sdk.wiring"):
        apply_rewires(pending, outputs, connect, forgotten.append)  # type: ignore[arg-type]
    assert not pending
    assert [e.endpoint for e in out.edges] == ["ipc:///s/b"]
    assert out.edges[0].seq == 0  # its own sequence: the first message sent is seq 1
    assert [e.endpoint for e in connected] == ["ipc:///s/b"]
    assert first.sock.closed_with == 0  # closed at once, no end-of-stream
    assert [e.endpoint for e in before] == ["ipc:///s/a"]  # replaced, never changed in place
    assert outputs["other"].edges == []
    assert forgotten == []  # an unwire gives no receiver up
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["wire for unknown output 'nope' ignored",
                        "unwire for unknown output 'nope' ignored"]  # fmt: skip


def test_a_receiver_gone_for_good_loses_its_edges_on_every_output() -> None:
    """`receiver_down` with `restarting: false`, applied as an unwire of each of its edges;
    the pool is told to forget it; a restarting receiver never comes this way (receiver.py)."""
    to_dead = [FakeEdge("ipc:///s/a", node="dead"), FakeEdge("ipc:///s/b", node="dead")]
    kept = FakeEdge("ipc:///s/c", node="live")
    outputs = {"one": FakeOutput([to_dead[0], kept]), "two": FakeOutput([to_dead[1]])}
    forgotten: list[str] = []
    pending: deque[Rewire | ReceiverDown] = deque([ReceiverDown("dead", False)])
    apply_rewires(pending, outputs, FakeEdge, forgotten.append)  # type: ignore[arg-type]
    assert outputs["one"].edges == [kept]
    assert outputs["two"].edges == []
    assert all(e.gone and e.sock.closed_with == 0 for e in to_dead)  # queued messages dropped
    assert not kept.gone
    assert kept.sock.closed_with is None
    assert forgotten == ["dead"]


def _frame(source: str, seq: int, kind: int = KIND_BYTES) -> Frame:
    return (source, 1, seq, 0, kind, {"s": source}, b"x", None)


def _events(inbox: Inbox) -> list[tuple[str, str]]:
    found = []
    while True:
        entry, _ = inbox.pop()
        if entry is None:
            return found
        if type(entry) is tuple:
            found.append(("INPUT", entry[0]))
        else:
            found.append((str(entry.type), str(entry.id)))


def test_added_input_delivers_and_closes() -> None:
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",))])
    inbox.add_input(DataInput("extra", "e1", 10, "drop_oldest", ("b/out",)))
    inbox.push("extra", [_frame("b/out", 1)])
    inbox.close_source("in", "a/out")
    assert _events(inbox) == [("INPUT", "extra"), ("INPUT_CLOSED", "in")]  # no STOP yet
    inbox.close_source("extra", "b/out")
    assert _events(inbox) == [("INPUT_CLOSED", "extra"), ("STOP", StopCause.ALL_INPUTS_CLOSED)]
    assert set(inbox.statistics()) == {"in", "extra"}
    assert inbox.statistics()["extra"] == InputStatistics(1, 0, 0, 0)


def test_added_sources_keep_an_input_open() -> None:
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",))])
    inbox.add_input(DataInput("in", "ignored", 5, "drop_oldest", ("b/out",)))
    inbox.push("in", [_frame("a/out", 1, KIND_EOS)])
    assert _events(inbox) == []  # b/out still feeds it
    inbox.push("in", [_frame("b/out", 1)])
    handle_control(inbox, _msg({"t": "upstream_done", "input": "in", "source": "b/out"}))
    assert _events(inbox) == [("INPUT", "in"), ("INPUT_CLOSED", "in"),
                              ("STOP", StopCause.ALL_INPUTS_CLOSED)]  # fmt: skip


def test_upstream_done_of_a_source_never_announced() -> None:
    # a sender wired live without add_input: its frames make it a source of the input
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",))])
    inbox.push("in", [_frame("late/out", 1), _frame("a/out", 1, KIND_EOS)])
    assert _events(inbox) == [("INPUT", "in")]
    handle_control(inbox, _msg({"t": "upstream_done", "input": "in", "source": "late/out"}))
    assert _events(inbox) == [("INPUT_CLOSED", "in"), ("STOP", StopCause.ALL_INPUTS_CLOSED)]


def test_an_input_added_without_sources_is_counted_open_from_its_first() -> None:
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",))])
    inbox.add_input(DataInput("extra", "e1", 10, "drop_oldest", ()))
    handle_control(inbox, _msg({"t": "upstream_done", "input": "extra", "source": "b/out"}))
    assert _events(inbox) == [("INPUT_CLOSED", "extra")]  # and no early STOP: `in` is open
    handle_control(inbox, _msg({"t": "upstream_done", "input": "in", "source": "a/out"}))
    assert _events(inbox) == [("INPUT_CLOSED", "in"), ("STOP", StopCause.ALL_INPUTS_CLOSED)]


def test_a_source_added_to_a_closed_input_stays_closed() -> None:
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",)),
                   DataInput("other", "e1", 10, "drop_oldest", ("c/out",))])  # fmt: skip
    handle_control(inbox, _msg({"t": "upstream_done", "input": "in", "source": "a/out"}))
    inbox.add_input(DataInput("in", "e0", 10, "drop_oldest", ("b/out",)))
    inbox.push("in", [_frame("b/out", 1)])
    assert _events(inbox) == [("INPUT_CLOSED", "in")]
    assert inbox.statistics()["in"].refused == 1


def test_start_while_started_and_unknown_messages_are_ignored() -> None:
    inbox = _inbox([DataInput("in", "e0", 10, "drop_oldest", ("a/out",))])
    handle_control(inbox, _msg({"t": "start"}))
    with pytest.raises(NodeError, match="unknown type 'whatever'"):
        _msg({"t": "whatever"})  # refused by the decoder: the receiver drops it
    assert _events(inbox) == []
    handle_control(inbox, _msg({"t": "stop"}))
    assert _events(inbox) == [(str(EventType.STOP), StopCause.STOP_REQUESTED)]


def test_stats_message_shape() -> None:
    stats = NodeStatistics(
        {"in": InputStatistics(5, 1, 2, 0)},
        {"out": OutputStatistics(9, 3), "idle": OutputStatistics(0, 0)},
    )
    assert json.loads(channel.encode(stats_message(stats, None, {"out": 70}))) == {
        "t": "stats",
        "inputs": {"in": {"received": 5, "dropped": 1, "queued": 2, "refused": 0}},
        "outputs": {
            "out": {"sent": 9, "dropped": 3, "bytes": 70},
            "idle": {"sent": 0, "dropped": 0, "bytes": 0},
        },
    }


def test_stats_carry_how_long_the_node_thread_was_away() -> None:
    """`away_ms` (dora's health check) goes out when set and decodes back; 0 is left out."""
    message = channel.Stats({}, {"out": {"sent": 1, "dropped": 0}}, 2500)
    assert json.loads(channel.encode(message))["away_ms"] == 2500
    assert channel.decode(channel.encode(message)) == message
    assert channel.decode(b'{"t": "stats", "inputs": {}, "outputs": {}}').away_ms == 0
    refused = b'{"t": "stats", "inputs": {}, "outputs": {}, "away_ms": -1}'
    with pytest.raises(NodeError):
        channel.decode(refused)


def test_a_timer_only_node_is_not_stopped_by_a_live_input_closing() -> None:
    inbox = _inbox([])
    inbox.add_input(DataInput("more", "e1", 10, "drop_oldest", ("a/out",)))
    inbox.push("more", [_frame("a/out", 1)])
    handle_control(inbox, _msg({"t": "upstream_done", "input": "more", "source": "a/out"}))
    assert _events(inbox) == [("INPUT", "more"), ("INPUT_CLOSED", "more")]  # and no STOP
