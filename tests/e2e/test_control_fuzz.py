"""Hypothesis garbage on the live daemon's control socket while a run streams: the daemon
stays alive and answers, and the run's messages show no gap (issue 11 item 1, SPEC 10)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from helpers import flow, stream_graph
from hypothesis import given, settings
from hypothesis import strategies as st
from procs import RawClient, daemon_pid

from daemon.model.pids import alive
from node_sdk import paths

# Types whose every body is harmless to the run: a fuzzer must not find `shutdown {}`.
SAFE_TYPES = ["ping", "status", "list", "logs", "wait", "node_list", "node_info",
              "topic_list", "topic_renew", "top", "explode"]  # fmt: skip
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)  # fmt: skip
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
BODIES = st.dictionaries(
    st.sampled_from(["run", "node", "timeout", "sample_s", "lease", "all", "x"]), VALUES
)


def _request(type_: str, body: Any, version: Any) -> bytes:
    return json.dumps({"v": version, "id": "fz", "type": type_, "body": body}).encode()


FRAMES = st.one_of(
    st.binary(max_size=512),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.builds(_request, st.sampled_from(SAFE_TYPES), BODIES | VALUES, st.sampled_from([1, 2])),
    st.sampled_from([b'{"v":1,"id":"n","type":"ping","body":{"x":1e400}}', b"NaN"]),
)


def test_fuzzing_the_control_socket_while_a_run_streams(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "fuzz.yml"
    yml.write_text(stream_graph(tick_ms=5))
    assert flow("start", str(yml), "--detach", "--name", "fuzz", home=daemon).returncode == 0
    pid = daemon_pid(daemon)
    client = RawClient(daemon)
    sent = 0

    @settings(max_examples=400, deadline=None, database=None)
    @given(FRAMES)
    def send(frame: bytes) -> None:
        nonlocal sent
        client.send_raw(frame)
        sent += 1
        while client.receive(timeout=0) is not None:  # keep our own queue short
            pass

    try:
        send()
    finally:
        client.close()
    assert sent >= 100
    assert alive(pid)
    status = flow("status", home=daemon)
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout
    time.sleep(0.5)
    assert flow("stop", "fuzz", home=daemon).returncode == 0
    sink = flow("logs", "fuzz", "sink", home=daemon).stdout
    summary = [line for line in sink.splitlines() if "summary" in line]
    assert summary, sink[-2000:]
    assert "gaps=0 repeats=0" in summary[0], summary
    log = paths.daemon_log(daemon).read_text()
    assert "Traceback" not in log  # every frame was refused or dropped, none broke a handler
    assert "control: dropped" in log
