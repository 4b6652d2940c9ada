"""Node faults: SIGKILL in a loop, a child left behind, a flood of requests, another user."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import zmq
from helpers import NODES, flow, stream_graph
from procs import GONE_S, RawClient, alive, daemon_pid, node_processes, wait_gone

from node_sdk import paths


def info_of(home: Path, name: str) -> dict:
    runs = [json.loads(x) for x in flow("list", "--all", "--json", home=home).stdout.splitlines()]
    return [r for r in runs if r["name"] == name][-1]


def node_of(home: Path, name: str, node: str) -> dict:
    return next(n for n in info_of(home, name)["nodes"] if n["id"] == node)


def test_sigkill_in_a_loop_restarts_in_the_same_slot(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "loop.yml"
    yml.write_text(
        f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    restart_policy: on-failure
    max_restarts: 20
    restart_delay: 0.05
    inputs:
      tick: flow/timer/millis/10
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: counter/count, queue_size: 1000}}  # a starved CPU must not drop
"""
    )
    assert flow("start", str(yml), "--detach", "--name", "victim", home=daemon).returncode == 0
    run_id = info_of(daemon, "victim")["id"]
    killed = 0
    # a safety bound: each kill waits for a new generation to run, seen through two CLI
    # calls; with 4 busy loops on the 2 cores the 8 kills took 33 s here
    deadline = time.monotonic() + 120
    while killed < 8 and time.monotonic() < deadline:
        live = node_processes(run_id)
        assert all(len(p) <= 1 for p in live.values()), live  # one process per slot, always
        counter = node_of(daemon, "victim", "counter")
        if counter["status"] == "running" and counter["pid"] and alive(counter["pid"]):
            os.kill(counter["pid"], signal.SIGKILL)
            killed += 1
            wait_gone([counter["pid"]], 5)
        time.sleep(0.1)
    assert killed == 8
    deadline = time.monotonic() + 10
    while node_of(daemon, "victim", "counter")["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    counter = node_of(daemon, "victim", "counter")
    assert counter["generation"] == 9
    assert node_of(daemon, "victim", "sink")["generation"] == 1  # untouched
    time.sleep(0.5)
    assert flow("stop", "victim", home=daemon).returncode == 0
    log = flow("logs", "victim", "sink", home=daemon).stdout
    # each generation numbers from 1; within one, nothing repeats
    assert "repeats=0" in log.splitlines()[-1], log[-500:]


def test_child_left_behind_by_a_node_is_reaped(daemon: Path, tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    yml = tmp_path / "fork.yml"
    yml.write_text(
        f"nodes:\n  - id: forker\n    path: {NODES}/forker.py\n"
        f"    env: {{CHILD_FILE: {child_file}}}\n"
    )
    done = flow("start", str(yml), "--attach", "--name", "forks", home=daemon, timeout=60)
    assert done.returncode == 0, done.stderr
    child = int(child_file.read_text())
    assert not wait_gone([child], GONE_S), "the forked child outlived its node"


def test_control_flood_while_a_run_streams(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(tick_ms=10))
    assert flow("start", str(yml), "--detach", "--name", "busy", home=daemon).returncode == 0
    process = psutil.Process(daemon_pid(daemon))
    rss_before = process.memory_info().rss
    stop = threading.Event()

    def flood() -> None:
        context = zmq.Context()
        sockets = [context.socket(zmq.DEALER) for _ in range(4)]
        for sock in sockets:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100)
            sock.connect(paths.control_endpoint(daemon))
        sent = 0
        while not stop.is_set() and sent < 200_000:
            for sock in sockets:
                for payload in (b"garbage", b'{"v":1,"id":"f","type":"list","body":{}}'):
                    try:
                        sock.send(payload, zmq.NOBLOCK)
                        sent += 1
                    except zmq.Again:
                        pass
                    try:  # read replies so they do not pile up on our side
                        while True:
                            sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        pass
        context.destroy(linger=0)

    flooders = [threading.Thread(target=flood) for _ in range(2)]
    for thread in flooders:
        thread.start()
    client = RawClient(daemon)
    try:
        answered = 0
        deadline = time.monotonic() + 4
        # the daemon answers ping throughout (each within RawClient's bound): 4 s of flood
        # and 20 pings at least, however slowly a loaded machine runs them, not 20 in 4 s
        while time.monotonic() < deadline or answered < 20:
            assert client.request("ping", {}, id_=f"p{answered}")["ok"] is True
            answered += 1
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in flooders:
            thread.join(10)
        client.close()
    rss_after = process.memory_info().rss
    assert rss_after < rss_before + 64 * 1024 * 1024, (rss_before, rss_after)  # bounded
    assert flow("stop", "busy", home=daemon).returncode == 0
    summary = flow("logs", "busy", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary, summary
    received = int(summary.split("received=")[1].split()[0])
    assert received > 200  # ~100/s for the 4 s of flood: the data plane never noticed


def _other_user() -> pwd.struct_passwd:
    name = "flowtest"
    try:
        return pwd.getpwnam(name)
    except KeyError:
        made = subprocess.run(["useradd", "-M", "-s", "/bin/false", name],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"cannot create a test user: {made.stderr.strip()}")
        return pwd.getpwnam(name)


def test_another_user_cannot_connect_or_read_logs(daemon: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making another user needs root")
    user = _other_user()
    yml = tmp_path / "quick.yml"
    yml.write_text(
        f"nodes:\n  - id: once\n    path: {NODES}/counter.py\n    env: {{COUNT: 3}}\n"
        "    inputs: {tick: flow/timer/millis/10}\n    outputs: [count]\n"
    )
    assert flow("start", str(yml), "--attach", "--name", "mine", home=daemon).returncode == 0
    log_file = next((daemon / "runs").glob("*/logs/once.log"))
    probe = (
        "import sys, zmq\n"
        "c = zmq.Context(); s = c.socket(zmq.DEALER); s.setsockopt(zmq.LINGER, 0)\n"
        f"s.connect({paths.control_endpoint(daemon)!r})\n"
        's.send(b\'{"v":1,"id":"x","type":"ping","body":{}}\')\n'
        "print('answered' if s.poll(2000) else 'no answer')\n"
        f"try:\n    open({str(log_file)!r}).read()\n    print('read the log')\n"
        "except OSError as e:\n    print('log refused', e.errno)\n"
    )
    done = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
         sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "no answer" in done.stdout, done.stdout + done.stderr
    assert "log refused" in done.stdout, done.stdout + done.stderr


def test_control_calls_from_an_older_generation_are_refused(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "gen.yml"
    yml.write_text(
        f"nodes:\n  - id: steady\n    path: {NODES}/spawncount.py\n"
        f"    env: {{SPAWN_FILE: {tmp_path / 'spawns'}}}\n"
        "    inputs: {tick: flow/timer/millis/50}\n"
    )
    assert flow("start", str(yml), "--detach", "--name", "gens", home=daemon).returncode == 0
    run_id = info_of(daemon, "gens")["id"]
    context = zmq.Context()
    try:
        ghost = context.socket(zmq.DEALER)
        ghost.setsockopt(zmq.LINGER, 0)
        ghost.setsockopt(zmq.IDENTITY, f"{run_id}/steady/0".encode())  # an older generation
        ghost.connect(paths.nodes_endpoint(daemon))
        ghost.send(b'{"t": "bye"}')
        deadline = time.monotonic() + 10
        log = ""
        while "refused bye from generation 0" not in log and time.monotonic() < deadline:
            time.sleep(0.1)
            log = paths.daemon_log(daemon).read_text()
        assert "refused bye from generation 0 (current 1)" in log
    finally:
        context.destroy(linger=0)
    assert node_of(daemon, "gens", "steady")["status"] == "running"
    assert flow("stop", "gens", home=daemon).returncode == 0
