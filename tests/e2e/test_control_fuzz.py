"""Hypothesis garbage on the live daemon's sockets while a run streams: the daemon stays
alive and answers, and the run's messages show no gap (issue 11 item 1 and its fuzz
acceptance, SPEC 10). The control socket alone, then the control socket, the node channel
and the run's keeper socket together."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil
import zmq
from helpers import flow, stream_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procs import RawClient, daemon_pid

from daemon.model import keeper_messages
from daemon.model.pids import alive
from node_sdk import channel, paths

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


# Structured garbage for the node channel and the keeper: every kind of message, with
# random fields. Left out are the kinds that are commands a same-user peer may give on
# purpose (the socket folder is 0700): a keeper's quit, signal, spawn and attach.
NODE_KINDS = ["hello", "bye", "stats", "attach", "start", "stop", "upstream_done", "wire",
              "unwire", "add_input", "attached", "refused", "nosuch"]  # fmt: skip
KEEPER_KINDS = ["ping", "pong", "state", "spawned", "spawn_failed", "exited", "degraded",
                "edge", "nosuch"]  # fmt: skip
FIELDS = st.dictionaries(
    st.sampled_from(["run", "node", "generation", "pid", "dataflow", "inputs", "outputs",
                     "input", "source", "output", "config", "error", "nodes", "code", "x"]),
    VALUES, max_size=5,
)  # fmt: skip


def _tagged(kind: str, fields: dict[str, Any]) -> bytes:
    return json.dumps({"t": kind, **fields}).encode()


def _garbage(kinds: list[str]) -> st.SearchStrategy[list[bytes]]:
    one = st.one_of(
        st.binary(max_size=512),
        st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
        st.builds(_tagged, st.sampled_from(kinds), FIELDS),
        st.just(b'{"t":"stats","inputs":{"a":{"received":1e400}},"outputs":{}}'),
    )
    return st.lists(one, min_size=1, max_size=3)  # also the wrong number of frames


NODE_FRAMES = st.one_of(
    _garbage(NODE_KINDS),
    st.just([channel.encode(channel.Attach("nosuch", None, 1))]),
    st.just([channel.encode(channel.Stats({}, {}))]),
)
KEEPER_FRAMES = _garbage(KEEPER_KINDS) | st.just([keeper_messages.encode(keeper_messages.Ping())])
TARGETS = st.one_of(
    st.tuples(st.just("control"), FRAMES.map(lambda f: [f])),
    st.tuples(st.sampled_from(["attach", "unknown", "older", "binary"]), NODE_FRAMES),
    st.tuples(st.just("keeper"), KEEPER_FRAMES),
)


def test_fuzzing_control_node_channel_and_keeper_while_a_run_streams(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "fuzz.yml"
    yml.write_text(stream_graph(tick_ms=5))
    assert flow("start", str(yml), "--detach", "--name", "fuzz", home=daemon).returncode == 0
    run = json.loads(flow("list", "--json", home=daemon).stdout.splitlines()[0])
    process = psutil.Process(daemon_pid(daemon))
    context = zmq.Context()
    identities = {
        "attach": b"attach/1/00ff",
        "unknown": f"{run['id']}/nosuch/1".encode(),
        "older": f"{run['id']}/counter/0".encode(),  # a generation the run has left behind
        "binary": bytes(range(200, 256)),
    }
    sockets: dict[str, zmq.Socket[bytes]] = {}
    run_sockets = paths.run_socket_dir(paths.socket_dir(daemon), run["id"])
    endpoints = {"control": paths.control_endpoint(daemon), "keeper": f"ipc://{run_sockets}/keeper"}
    for name in ("control", "keeper", *identities):
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, 100_000)
        if name in identities:
            socket.setsockopt(zmq.IDENTITY, identities[name])
        socket.connect(endpoints.get(name, paths.nodes_endpoint(daemon)))
        sockets[name] = socket
    sent: dict[str, int] = {}

    @settings(
        max_examples=600, deadline=2000, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(TARGETS)
    def send(target: tuple[str, list[bytes]]) -> None:
        name, frames = target
        sockets[name].send_multipart(frames, zmq.NOBLOCK)
        sent[name] = sent.get(name, 0) + 1
        for socket in sockets.values():  # replies and stops: keep our own queues short
            while socket.poll(0):
                socket.recv_multipart()

    try:
        send()
        time.sleep(1.0)  # what was queued reaches the daemon and the keeper
        assert process.is_running()
        assert process.status() != psutil.STATUS_ZOMBIE
        status = flow("status", home=daemon)
        assert status.returncode == 0, status.stderr
        listed = json.loads(flow("list", "--all", "--json", home=daemon).stdout.splitlines()[0])
        assert listed["status"] == "running", listed  # its keeper was never taken as lost
    finally:
        context.destroy(linger=0)
    assert set(sent) >= {"control", "keeper", "attach", "unknown", "older", "binary"}, sent
    assert flow("stop", "fuzz", home=daemon).returncode == 0
    sink = flow("logs", "fuzz", "sink", home=daemon).stdout
    summary = [line for line in sink.splitlines() if "summary" in line]
    assert summary, sink[-2000:]
    assert "gaps=0 repeats=0" in summary[0], summary
    assert int(summary[0].split("received=")[1].split()[0]) > 50
    log = paths.daemon_log(daemon).read_text()
    assert "Traceback" not in log
    assert "node channel: dropped" in log
    keeper_log = (paths.run_dir(daemon, run["id"]) / "keeper.log").read_text()
    assert "Traceback" not in keeper_log
    assert "keeper: dropped" in keeper_log
