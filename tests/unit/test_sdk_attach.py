"""Dynamic attach from the SDK's side: the daemon's paths, the attach request, refusals."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNodeRouter

from node_sdk import Node, NodeError, attach
from node_sdk import paths as sdk_paths

MakeRouter = Callable[..., FakeNodeRouter]  # (answer=no_answer), served by a thread


REFUSALS = [
    "no running dataflow with ID or name demo",
    "node viewer in dataflow demo is not dynamic",
    "node viewer in dataflow demo is already attached",
    "no node viewer in dataflow demo",
    "node id viewer is dynamic in several running dataflows (a, b): pass dataflow=",
]


@pytest.mark.parametrize("error", REFUSALS)
def test_refusal_is_the_daemons_line_verbatim(node_router: MakeRouter, error: str) -> None:
    fake = node_router(lambda _identity, _request: [{"t": "refused", "error": error}])
    with pytest.raises(NodeError) as caught:
        Node("viewer", dataflow="demo")
    assert str(caught.value) == error
    [(identity, request)] = fake.requests
    assert re.fullmatch(rb"attach/%d/[0-9a-f]{8}" % os.getpid(), identity)
    assert request == {"t": "attach", "node": "viewer", "dataflow": "demo", "pid": os.getpid()}


@pytest.mark.parametrize(("env", "expected"), [(None, None), ("", None), ("run-7", "run-7")])
def test_dataflow_comes_from_the_environment(
    node_router: MakeRouter,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    expected: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv("FLOW_DATAFLOW", raising=False)
    else:
        monkeypatch.setenv("FLOW_DATAFLOW", env)
    fake = node_router(lambda _identity, _request: [{"t": "refused", "error": "no"}])
    with pytest.raises(NodeError, match=r"^no$"):
        Node("viewer")
    assert fake.requests[0][1]["dataflow"] == expected


def test_explicit_dataflow_wins_over_the_environment(
    node_router: MakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_DATAFLOW", "from-env")
    fake = node_router(lambda _identity, _request: [{"t": "refused", "error": "no"}])
    with pytest.raises(NodeError):
        attach.attach("viewer", "given")
    assert fake.requests[0][1]["dataflow"] == "given"


def test_a_bad_config_in_the_reply_is_a_node_error(
    node_router: MakeRouter,
) -> None:
    node_router(lambda _identity, _request: [{"t": "attached", "config": {"run": "r"}}])
    expected = r"^bad attach reply from the daemon: config: \$\.node must be"
    with pytest.raises(NodeError, match=expected):
        Node("viewer")


def test_the_config_in_the_reply_is_the_nodes(
    node_router: MakeRouter,
) -> None:
    config = {"run": "r1", "node": "viewer", "generation": 3, "daemon": "ipc:///x/nodes",
              "inputs": {"tick": {"timer_ns": 1000}}, "outputs": {"seen": []}}  # fmt: skip
    # unrelated messages before the answer are skipped
    replies: Iterator[dict[str, Any]] = iter([{"t": "noise"}, {"t": "attached", "config": config}])
    fake = node_router()
    fake.answer = lambda identity, _request: _send_all(fake, identity, replies)
    cfg = attach.attach("viewer")
    assert (cfg.run, cfg.node, cfg.generation) == ("r1", "viewer", 3)
    assert dict(cfg.outputs) == {"seen": ()}


def _send_all(
    fake: FakeNodeRouter, identity: bytes, replies: Iterator[dict[str, Any]]
) -> list[dict[str, Any]]:
    """In the serving thread: a frame that is no JSON, then `replies`."""
    fake.router.send_multipart([identity, b"not json"])
    return list(replies)


def test_silent_daemon_times_out_naming_the_endpoint(
    node_router: MakeRouter, flow_home: Path
) -> None:
    node_router()
    endpoint = sdk_paths.nodes_endpoint(flow_home)
    with pytest.raises(NodeError, match=f"^no answer from the flow daemon at {endpoint} within"):
        attach.attach("viewer", timeout_s=0.2)
