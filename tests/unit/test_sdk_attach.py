"""Dynamic attach from the SDK's side: the daemon's paths, the attach request, refusals."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from node_sdk import Node, NodeError, attach
from node_sdk import paths as sdk_paths

BOUND_S = 15.0  # a safety bound on waits, never an assertion about speed


Answer = Callable[[bytes, dict[str, Any]], dict[str, Any] | None]


class FakeNodesRouter:
    """The daemon's node channel ROUTER, in a thread: answers each request with `answer`."""

    def __init__(self, home: Path, answer: Answer) -> None:
        folder = sdk_paths.socket_dir(home)
        folder.mkdir(mode=0o700, exist_ok=True)
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.endpoint = sdk_paths.nodes_endpoint(home)
        self.router.bind(self.endpoint)
        self.answer = answer
        self.requests: list[tuple[bytes, dict[str, Any]]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            if not self.router.poll(50):
                continue
            identity, frame = self.router.recv_multipart()
            request = json.loads(frame)
            self.requests.append((identity, request))
            reply = self.answer(identity, request)
            if reply is not None:
                self.router.send_multipart([identity, json.dumps(reply).encode()])
        self.router.close(linger=0)
        Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)  # zmq leaves it

    def close(self) -> None:
        self.done.set()
        self.thread.join(BOUND_S)
        self.ctx.term()


@pytest.fixture
def router(flow_home: Path) -> Iterator[Callable[[Answer], FakeNodesRouter]]:
    made: list[FakeNodesRouter] = []

    def make(answer: Answer) -> FakeNodesRouter:
        made.append(FakeNodesRouter(flow_home, answer))
        return made[-1]

    try:
        yield make
    finally:
        for fake in made:
            fake.close()


REFUSALS = [
    "no running dataflow with ID or name demo",
    "node viewer in dataflow demo is not dynamic",
    "node viewer in dataflow demo is already attached",
    "no node viewer in dataflow demo",
    "node id viewer is dynamic in several running dataflows (a, b): pass dataflow=",
]


@pytest.mark.parametrize("error", REFUSALS)
def test_refusal_is_the_daemons_line_verbatim(
    router: Callable[[Answer], FakeNodesRouter], error: str
) -> None:
    fake = router(lambda _identity, _request: {"t": "refused", "error": error})
    with pytest.raises(NodeError) as caught:
        Node("viewer", dataflow="demo")
    assert str(caught.value) == error
    [(identity, request)] = fake.requests
    assert re.fullmatch(rb"attach/%d/[0-9a-f]{8}" % os.getpid(), identity)
    assert request == {"t": "attach", "node": "viewer", "dataflow": "demo", "pid": os.getpid()}


@pytest.mark.parametrize(("env", "expected"), [(None, None), ("", None), ("run-7", "run-7")])
def test_dataflow_comes_from_the_environment(
    router: Callable[[Answer], FakeNodesRouter],
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    expected: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv("FLOW_DATAFLOW", raising=False)
    else:
        monkeypatch.setenv("FLOW_DATAFLOW", env)
    fake = router(lambda _identity, _request: {"t": "refused", "error": "no"})
    with pytest.raises(NodeError, match=r"^no$"):
        Node("viewer")
    assert fake.requests[0][1]["dataflow"] == expected


def test_explicit_dataflow_wins_over_the_environment(
    router: Callable[[Answer], FakeNodesRouter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_DATAFLOW", "from-env")
    fake = router(lambda _identity, _request: {"t": "refused", "error": "no"})
    with pytest.raises(NodeError):
        attach.attach("viewer", "given")
    assert fake.requests[0][1]["dataflow"] == "given"


def test_a_bad_config_in_the_reply_is_a_node_error(
    router: Callable[[Answer], FakeNodesRouter],
) -> None:
    router(lambda _identity, _request: {"t": "attached", "config": {"run": "r"}})
    expected = r"^bad attach reply from the daemon: config: \$\.node must be"
    with pytest.raises(NodeError, match=expected):
        Node("viewer")


def test_the_config_in_the_reply_is_the_nodes(
    router: Callable[[Answer], FakeNodesRouter],
) -> None:
    config = {"run": "r1", "node": "viewer", "generation": 3, "daemon": "ipc:///x/nodes",
              "inputs": {"tick": {"timer_ns": 1000}}, "outputs": {"seen": []}}  # fmt: skip
    # unrelated messages before the answer are skipped
    replies = iter([{"t": "noise"}, {"t": "attached", "config": config}])
    fake = router(lambda identity, _request: None)
    fake.answer = lambda identity, _request: _send_all(fake, identity, replies)
    cfg = attach.attach("viewer")
    assert (cfg.run, cfg.node, cfg.generation) == ("r1", "viewer", 3)
    assert dict(cfg.outputs) == {"seen": ()}


def _send_all(fake: FakeNodesRouter, identity: bytes, replies: Iterator[dict[str, Any]]) -> None:
    fake.router.send(identity, zmq.SNDMORE)
    fake.router.send(b"not json")
    for reply in replies:
        fake.router.send_multipart([identity, json.dumps(reply).encode()])


def test_silent_daemon_times_out_naming_the_endpoint(
    router: Callable[[Answer], FakeNodesRouter], flow_home: Path
) -> None:
    router(lambda _identity, _request: None)
    endpoint = sdk_paths.nodes_endpoint(flow_home)
    with pytest.raises(NodeError, match=f"^no answer from the flow daemon at {endpoint} within"):
        attach.attach("viewer", timeout_s=0.2)
