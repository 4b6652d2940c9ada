"""The SDK's public surface: names, import cost, events, configuration, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import node_sdk
from daemon.model.logformat import LOG_MARKER as DAEMON_LOG_MARKER
from node_sdk import Event, EventType, Node, NodeError, StopCause, config, logbridge


def test_public_names_are_pinned() -> None:
    assert sorted(node_sdk.__all__) == [
        "DaemonUnreachable", "Event", "EventType", "InputStatistics", "MessageTooLarge", "Node",
        "NodeError", "NodeStatistics", "OutputStatistics", "SendTimeout", "StopCause",
    ]  # fmt: skip


def test_import_stays_small() -> None:
    heavy = ("trio", "rich", "numpy", "pyarrow", "yaml", "attrs")
    code = f"import sys, node_sdk; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_node_module_leaves_the_large_payload_machinery_out() -> None:
    """`import node_sdk.node` (what every node pays) loads neither cattrs nor the
    shared-memory modules: a node that never sees a large payload never imports them; nor
    the tcp:// ones (CURVE, ZAP, link monitors): a node on one machine never pays them."""
    heavy = ("cattrs", "attrs", "ctypes", "hashlib", "node_sdk.shm", "trio", "rich",
             "node_sdk.tcp", "node_sdk.links", "zmq.utils.monitor", "asyncio")  # fmt: skip
    code = f"import sys, node_sdk.node; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_log_marker_matches_the_daemons() -> None:
    assert logbridge.LOG_MARKER == DAEMON_LOG_MARKER


def test_events_read_like_dora_dicts() -> None:
    event = Event(EventType.INPUT, "in", b"v", {"timestamp": 1}, seq=4)
    assert event["type"] == "INPUT"
    assert (event["id"], event["value"], event["metadata"]) == ("in", b"v", {"timestamp": 1})
    assert event.get("error") is None
    assert event.get("nope", 5) == 5
    assert "value" in event
    assert "error" not in event
    assert list(event.keys()) == ["type", "id", "value", "metadata", "seq"]
    with pytest.raises(KeyError):
        event["nope"]
    with pytest.raises(AttributeError):
        event.id = "x"  # type: ignore[misc]
    stop = Event(EventType.STOP, StopCause.ALL_INPUTS_CLOSED)
    assert stop["id"] == "ALL_INPUTS_CLOSED"


CONFIG: dict[str, Any] = {
    "run": "r", "run_name": "demo", "node": "n", "generation": 2, "restarts": 1,
    "daemon": "ipc:///x/nodes", "descriptor": "/x/dataflow.yml", "config": {"id": "n"},
    "inputs": {"in": {"endpoint": "ipc:///x/i0", "queue_size": 3, "policy": "backpressure",
                      "sources": ["a/out"]},
               "tick": {"timer_ns": 1000}},
    "outputs": {"out": [{"endpoint": "ipc:///x/o", "node": "b", "input": "x",
                         "policy": "drop_oldest"}]},
    "shm_threshold": 65536, "daemon_grace_s": 30.0,
}  # fmt: skip


def test_config_parses_into_specs() -> None:
    cfg = config.parse(json.dumps(CONFIG))
    assert cfg.data_inputs == [config.DataInput("in", "ipc:///x/i0", 3, "backpressure", ("a/out",))]
    assert cfg.timer_inputs == [config.TimerInput("tick", 1000)]
    assert cfg.outputs["out"][0].receiver == "b/x"
    assert (cfg.generation, cfg.restarts, cfg.run_name) == (2, 1, "demo")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"run": None}, r"\$\.run must be"),
        ({"inputs": {"in": {"timer_ns": 0}}}, r"\$\.inputs\.in\.timer_ns"),
        ({"inputs": {"in": {"endpoint": "e", "policy": "lossy"}}}, "'lossy' is not one of"),
        ({"outputs": {"out": [{"node": "b"}]}}, r"\$\.outputs\.out\[0\]\.endpoint"),
    ],
)
def test_bad_config_is_one_line_naming_the_place(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(NodeError, match=problem):
        config.parse(json.dumps({**CONFIG, **change}))


def test_no_config_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW_NODE_CONFIG", raising=False)
    with pytest.raises(NodeError, match=r"^no FLOW_NODE_CONFIG in the environment: start this"):
        Node()


def test_dynamic_attach_without_a_daemon(flow_home: Path) -> None:
    with pytest.raises(NodeError, match=f"^no flow daemon for FLOW_HOME {flow_home}: run flow up$"):
        Node("x")


@pytest.mark.parametrize(("text", "level"), [("", 20), ("debug", 10), ("WARNING", 30), ("5", 5)])
def test_log_level_from_env(monkeypatch: pytest.MonkeyPatch, text: str, level: int) -> None:
    monkeypatch.setenv("FLOW_LOG_LEVEL", text)
    assert logbridge.level_from_env() == level
