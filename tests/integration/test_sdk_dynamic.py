"""A dynamic node attaching to a fake daemon; live `wire`/`unwire`/`add_input`; `stats`.

The fake daemon is the shared `FakeNodeRouter`, at the endpoint the SDK computes from
FLOW_HOME (the conftest gives each test its own, without XDG_RUNTIME_DIR). The nodes are real
processes: a spawned `sender` ticking on a timer, and a plain script `Node("viewer")`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from fakes import FakeNodeRouter

from node_sdk.frames import DataMessage, decode_data, encode_data, encode_eos
from node_sdk.wire import KIND_EOS
from node_sdk.wiring import REPORT_EVERY_S

BOUND_S = 20.0  # a safety bound on every wait, never an assertion about speed
RUN = "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000"

SENDER = """
from node_sdk import Node

i = 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            i += 1  # sent from the first tick on, before any edge exists: that is fine
            node.send_output("out", i.to_bytes(8, "little"), {"i": i})
"""

VIEWER = """
from node_sdk import Node

with Node("viewer") as node:  # a plain script: no FLOW_NODE_CONFIG, it attaches
    for event in node:
        if event["type"] == "INPUT":
            meta = {"input": event.id, "seq": event.seq, "i": event.metadata.get("i", 0)}
            node.send_output("seen", bytes(event.value), meta)
        elif event["type"] == "INPUT_CLOSED":
            node.send_output("seen", None, {"closed": event.id})
"""


class Harness:
    """The fake daemon's node channel (`FakeNodeRouter`) and the test's own receivers
    (PULLs), pumped together by the test's thread."""

    def __init__(self, home: Path, data_dir: Path) -> None:
        self.daemon = FakeNodeRouter.for_home(home, self._answer)
        self.endpoint = self.daemon.endpoint
        self.data_dir = data_dir
        self.ctx = self.daemon.ctx
        self.got: dict[str, list[DataMessage]] = {}
        self.viewer_config: dict[str, Any] = {}
        self.before_start: dict[str, list[dict[str, Any]]] = {}  # sent between hello and start

    def ep(self, name: str) -> str:
        return f"ipc://{self.data_dir / name}"

    def pull(self, name: str) -> str:
        sock = self.ctx.socket(zmq.PULL)
        sock.linger = 0
        sock.bind(self.ep(name))
        self.got[name] = []
        self.daemon.watch(sock, lambda frames: self.got[name].append(decode_data(frames)))
        return self.ep(name)

    def pump(self, until: Callable[[], bool], what: str) -> None:
        self.daemon.pump(until, what, BOUND_S)

    def send(self, node: str, message: dict[str, Any]) -> None:
        self.daemon.send(node, message)

    @property
    def peers(self) -> dict[str, bytes]:
        return self.daemon.peers

    @property
    def byes(self) -> set[str]:
        return self.daemon.byes

    @property
    def attaches(self) -> list[tuple[bytes, dict[str, Any]]]:
        return [(i, m) for i, m in self.daemon.requests if i.startswith(b"attach/")]

    def _answer(self, identity: bytes, message: dict[str, Any]) -> list[dict[str, Any]]:
        """An attach gets the viewer's configuration; a hello its early messages and start."""
        if identity.startswith(b"attach/"):
            return [{"t": "attached", "config": self.viewer_config}]
        if message["t"] == "hello":
            return [*self.before_start.get(message["node"], []), {"t": "start"}]
        return []

    def data(self, name: str, **meta: Any) -> list[DataMessage]:
        """Data messages (no end-of-stream) a PULL got, filtered by metadata."""
        return [
            m
            for m in self.got[name]
            if m.header.kind != KIND_EOS and all(m.metadata.get(k) == v for k, v in meta.items())
        ]

    def close(self) -> None:
        self.daemon.close()


@pytest.fixture
def harness(flow_home: Path, sockdir: Path) -> Iterator[Harness]:
    made = Harness(flow_home, sockdir)
    try:
        yield made
    finally:
        made.close()


def _values(messages: list[DataMessage]) -> list[int]:
    return [int.from_bytes(m.value, "little") for m in messages]


def test_dynamic_node_attaches_and_is_rewired_live(
    harness: Harness, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    h = harness
    seen = h.pull("seen")
    h.viewer_config = {
        "run": RUN, "run_name": "demo", "node": "viewer", "generation": 4, "restarts": 0,
        "daemon": h.endpoint, "config": {"id": "viewer", "path": "dynamic"},
        "inputs": {"in": {"endpoint": h.ep("vin"), "queue_size": 1000,
                          "policy": "drop_oldest", "sources": ["sender/out"]}},
        "outputs": {"seen": [{"endpoint": seen, "node": "test", "input": "seen",
                              "policy": "drop_oldest"}]},
    }  # fmt: skip
    sender_config = {
        "run": RUN, "node": "sender", "generation": 1, "daemon": h.endpoint,
        "inputs": {"tick": {"timer_ns": 20_000_000}}, "outputs": {"out": []},
    }  # fmt: skip
    began = time.monotonic()  # before either node exists
    sender = spawn("sender", SENDER, FLOW_NODE_CONFIG=json.dumps(sender_config))
    viewer = spawn("viewer", VIEWER, FLOW_DATAFLOW="demo")
    h.pump(lambda: {"sender", "viewer"} <= h.peers.keys(), "both nodes' hello")

    # the attach request, then the node joined with the granted configuration
    [(identity, request)] = h.attaches
    assert re.fullmatch(rb"attach/%d/[0-9a-f]{8}" % viewer.pid, identity)
    assert request == {"t": "attach", "node": "viewer", "dataflow": "demo", "pid": viewer.pid}
    assert h.peers["viewer"] == f"{RUN}/viewer/4".encode()
    h.send("viewer", {"t": "start"})  # a repeated start is ignored

    # wire sender/out to the viewer: it receives from the first message on that edge
    h.send("sender", {"t": "wire", "output": "nope", "endpoint": h.ep("x"), "node": "viewer",
                      "input": "in", "policy": "drop_oldest", "queue_size": 10})  # fmt: skip
    wire_in = {"t": "wire", "output": "out", "endpoint": h.ep("vin"), "node": "viewer",
               "input": "in", "policy": "drop_oldest", "queue_size": 1000}  # fmt: skip
    h.send("sender", wire_in)
    h.pump(lambda: len(h.data("seen", input="in")) >= 5, "5 messages through the viewer")
    through = h.data("seen", input="in")
    assert [m.metadata["seq"] for m in through] == list(range(1, len(through) + 1))
    first = through[0].metadata["i"]
    assert _values(through) == list(range(first, first + len(through)))

    # a new receiver: its own seq from 1; unwired: it gets nothing sent after that
    p1 = h.pull("p1")
    probe = {"t": "wire", "output": "out", "node": "probe", "input": "p", "queue_size": 10}
    h.send("sender", {**probe, "endpoint": p1})
    h.pump(lambda: len(h.data("p1")) >= 3, "3 messages on probe 1")
    h.send("sender", {"t": "unwire", "output": "out", "endpoint": p1})
    p2 = h.pull("p2")
    h.send("sender", {**probe, "endpoint": p2})
    h.send("sender", {**probe, "endpoint": p2})  # a repeated wire adds no second edge
    h.pump(lambda: len(h.data("p2")) >= 5, "5 messages on probe 2")
    h.pump(lambda: len(h.data("seen", input="in")) >= len(through) + 10, "more via the viewer")
    for name in ("p1", "p2"):
        got = h.data(name)
        assert [m.header.seq for m in got] == list(range(1, len(got) + 1)), name
        assert _values(got) == list(range(_values(got)[0], _values(got)[0] + len(got))), name
    assert max(_values(h.data("p1"))) < min(_values(h.data("p2")))

    # add_input: a new input id delivers; a source it never announced closes it properly
    add = {"t": "add_input", "input": "extra", "endpoint": h.ep("vx"), "queue_size": 10,
           "policy": "drop_oldest", "sources": ["test/x"]}  # fmt: skip
    h.send("viewer", add)
    push = h.ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(h.ep("vx"))
    for frames in (
        encode_data((101).to_bytes(8, "little"), source="test/x", generation=1, seq=1,
                    timestamp_ns=1, metadata={"i": 101}),
        encode_data((201).to_bytes(8, "little"), source="test/y", generation=1, seq=1,
                    timestamp_ns=1, metadata={"i": 201}),
        encode_eos("test/x", 1, 1),
        encode_data((202).to_bytes(8, "little"), source="test/y", generation=1, seq=2,
                    timestamp_ns=1, metadata={"i": 202}),  # still open: test/y feeds it
    ):  # fmt: skip
        push.send_multipart(frames)
    h.pump(lambda: len(h.data("seen", input="extra")) >= 3, "the added input's messages")
    assert _values(h.data("seen", input="extra")) == [101, 201, 202]
    assert [m.metadata["seq"] for m in h.data("seen", input="extra")] == [1, 1, 2]
    assert not h.data("seen", closed="extra")
    h.send("viewer", {"t": "upstream_done", "input": "extra", "source": "test/y"})
    h.pump(lambda: bool(h.data("seen", closed="extra")), "INPUT_CLOSED of the added input")
    assert not h.data("seen", closed="in")

    # the statistics report, every second, from both nodes
    stats = h.daemon.stats
    h.pump(lambda: len(stats.get("viewer", [])) >= 3, "three stats reports of the viewer")
    report = stats["viewer"][-1]
    assert set(report) == {"t", "inputs", "outputs"}
    assert set(report["inputs"]) == {"in", "extra"}
    counters = set(report["inputs"]["extra"])
    assert {"received", "delivered", "dropped", "queued", "refused", "bytes"} <= counters
    assert counters <= {"received", "delivered", "dropped", "queued", "refused", "bytes",
                        "latency_count", "latency_p50_us", "latency_p99_us"}  # and latency
    assert report["inputs"]["extra"]["received"] == 3
    assert set(report["outputs"]) == {"seen"}
    assert all(type(v) is int for v in report["outputs"]["seen"].values())
    # a report is due REPORT_EVERY_S after the previous one, late or not: no more fit in
    # the time since the node began (an upper bound a load cannot break; never a rate)
    assert len(stats["viewer"]) <= (time.monotonic() - began) / REPORT_EVERY_S
    sent = [m["outputs"]["out"]["sent"] for m in stats.get("sender", [])]
    assert sent == sorted(sent)  # an unwired edge's count is kept: never goes back

    # stop: both end cleanly and say bye. The viewer first: a sender stopped at the same
    # time sends end-of-stream, which could reach the viewer before its own STOP.
    push.close(linger=0)
    h.send("viewer", {"t": "stop"})
    h.pump(lambda: "viewer" in h.byes, "the viewer's bye")
    h.send("sender", {"t": "stop"})
    h.pump(lambda: h.byes == {"sender", "viewer"}, "both nodes' bye")
    for child in (sender, viewer):
        out, err = child.communicate(timeout=BOUND_S)
        assert child.returncode == 0, err
        if child is sender:  # a logging record: on stdout, with the node's prints
            assert "wire for unknown output 'nope' ignored" in out
    assert h.data("seen", closed="in") == []  # its sender never ended: it stays open


def test_wiring_sent_before_start_is_applied(
    harness: Harness, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    h = harness
    p0, p1 = h.pull("p0"), h.pull("p1")
    config = {
        "run": RUN, "node": "sender", "generation": 2, "daemon": h.endpoint,
        "inputs": {"tick": {"timer_ns": 20_000_000}},
        "outputs": {"out": [{"endpoint": p0, "node": "probe", "input": "p0"}]},
    }  # fmt: skip
    h.before_start["sender"] = [
        {"t": "unwire", "output": "out", "endpoint": p0},  # an edge of its configuration
        {"t": "wire", "output": "out", "endpoint": p1, "node": "probe", "input": "p1"},
    ]
    sender = spawn("sender", SENDER, FLOW_NODE_CONFIG=json.dumps(config))
    h.pump(lambda: len(h.data("p1")) >= 5, "5 messages on the edge wired before start")
    assert [m.header.seq for m in h.data("p1")] == list(range(1, len(h.data("p1")) + 1))
    assert [m.header.generation for m in h.data("p1")] == [2] * len(h.data("p1"))
    h.send("sender", {"t": "stop"})
    h.pump(lambda: any(m.header.kind == KIND_EOS for m in h.got["p1"]), "end-of-stream")
    _, err = sender.communicate(timeout=BOUND_S)
    assert sender.returncode == 0, err
    assert h.got["p0"] == []  # unwired before its first send: nothing, not even end-of-stream
