"""Bad requests are answered and logged; the daemon and its runs go on (SPEC 7.2, 10)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from helpers import NODES, flow, start_stream
from procs import RawClient, alive, daemon_pid

from daemon.model.parts import split_request
from node_sdk import paths


def test_burst_of_bad_requests_is_answered_and_runs_go_on(daemon: Path, tmp_path: Path) -> None:
    quick = tmp_path / "quick.yml"
    quick.write_text(
        "nodes:\n  - id: once\n    path: NODES/counter.py\n    env: {COUNT: 1}\n"
        "    inputs: {tick: flow/timer/millis/1}\n    outputs: [count]\n".replace(
            "NODES", str(NODES)
        )
    )
    assert flow("start", str(quick), "--attach", "--name", "finished", home=daemon).returncode == 0
    start_stream(daemon, tmp_path, "live")
    pid = daemon_pid(daemon)
    client = RawClient(daemon)
    try:
        replies = {
            "unknown run": client.request("stop", {"run": "no-such-run"}, id_="a"),
            "finished run": client.request("stop", {"run": "finished"}, id_="b"),
            "wrong version": client.request("ping", {}, v=99, id_="c"),
            "unknown type": client.request("explode", {}, id_="d"),
            "bad field": client.request("stop", {"run": 42}, id_="e"),
        }
        client.send_raw(b"\x00\xffnot json at all")
        client.send_raw(b"[1, 2, 3]")
        oversized = json.dumps(
            {"v": 1, "id": "f", "type": "ping", "body": {"x": "y" * (2 << 20)}}
        ).encode()
        for message in split_request(oversized):  # whole in parts, too large once joined
            client.socket.send_multipart(message)
        replies["oversized"] = client.receive() or {}
        client.send_raw(oversized)  # one frame over the frame limit: cut off by libzmq
        assert client.receive(1) is None
        assert client.request("ping", {}, id_="h")["ok"] is True  # reconnected, answered
        for _ in range(50):  # a burst, interleaved with good requests
            client.send_raw(b"garbage")
            assert client.request("ping", {}, id_="g")["ok"] is True
    finally:
        client.close()
    expected = {
        "unknown run": "no run with ID or name 'no-such-run'",
        "finished run": ") is not active: it has ended (succeeded)",
        "wrong version": "protocol version 99 not supported",
        "unknown type": "unknown request type 'explode'",
        "bad field": "field 'run': expected a string",
        "oversized": "request too large",
    }
    for what, fragment in expected.items():
        reply = replies[what]
        assert reply.get("ok") is False, (what, reply)
        assert fragment in reply["error"]["message"], (what, reply)
    # the daemon is the same process, alive, and logged the garbage it dropped
    assert daemon_pid(daemon) == pid
    assert os.path.exists(f"/proc/{pid}")
    log = paths.daemon_log(daemon).read_text()
    assert "dropped" in log
    assert "garbage" in log
    # the active run streamed through it all without a gap
    time.sleep(0.5)
    assert flow("stop", "live", home=daemon).returncode == 0
    sink = flow("logs", "live", "sink", home=daemon).stdout
    summary = [line for line in sink.splitlines() if "summary" in line]
    assert summary, sink[-2000:]
    assert "gaps=0 repeats=0" in summary[0], sink[-2000:]
    assert int(summary[0].split("received=")[1].split()[0]) > 50


def test_fatal_error_stops_every_node_first(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home, env_extra={"FLOW_TEST_HOOKS": "1"}).returncode == 0
    start_stream(flow_home, tmp_path, "doomed")
    info = json.loads(flow("list", "--json", home=flow_home).stdout.splitlines()[0])
    node_pids = [n["pid"] for n in info["nodes"]]
    assert all(node_pids)
    pid = daemon_pid(flow_home)
    client = RawClient(flow_home)
    try:
        client.send_raw(
            json.dumps({"v": 1, "id": "x", "type": "_inject_fatal", "body": {}}).encode()
        )
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    finally:
        client.close()
    assert not os.path.exists(f"/proc/{pid}"), "the daemon did not exit"
    for node_pid in node_pids:
        assert not alive(node_pid), f"node {node_pid} outlived the daemon"
    log = paths.daemon_log(flow_home).read_text()
    assert "fatal: injected by a test" in log


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
