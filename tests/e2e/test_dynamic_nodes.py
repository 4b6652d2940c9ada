"""Dynamic nodes (SPEC 6) as a user attaches them: plain scripts calling Node("id")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from helpers import BOUND_S, NODES, flow, flow_env
from procs import GONE_S, daemon_pid, wait_gone

from node_sdk import paths

GRAPH = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: viewer
    path: dynamic
    inputs:
      data: counter/count
      tick: flow/timer/millis/100
    outputs: [seen]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: viewer/seen, queue_size: 1000}}
"""


def start(home: Path, tmp_path: Path, name: str, text: str = GRAPH) -> None:
    yml = tmp_path / f"{name}.yml"
    yml.write_text(text)
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr


def viewer(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(NODES / "viewer.py")],
        env=flow_env(home, env), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_attach_receive_detach_reattach(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "live")
    # 150 messages of a 20 ms counter: at least 3 s, so it reported a rate (two reports)
    first = viewer(daemon, WANT="150")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "viewer got 150" in first.stdout
    # detached: its totals stay, nothing of it is shown as current (rate, latency, pid)
    info = json.loads(flow("node", "info", "live", "viewer", "--json", home=daemon).stdout)
    assert (info["status"], info["pid"]) == ("dynamic", None), info
    assert info["stats"]["rates"] == {}, info
    assert info["stats"]["inputs"]["data"]["received"] > 0, info  # as of its last report
    assert "latency_p50_us" not in info["stats"]["inputs"]["data"], info
    assert re.search(r"data: - queued, \d+ dropped, -/s", _viewer_row(daemon, "live"))
    top = json.loads(flow("top", "--once", home=daemon).stdout)["runs"][0]["nodes"]
    shown = next(n for n in top if n["id"] == "viewer")
    assert (shown["in_rate"], shown["latency_p50_us"], shown["pid"]) == (None,) * 3, shown
    second = viewer(daemon, WANT="20", VIEWER_RUN="live")
    assert second.returncode == 0, second.stdout + second.stderr
    match = re.search(r"got 20 ticks (\d+) in ([\d.]+)s", second.stdout)
    assert match, second.stdout
    ticks, elapsed = int(match[1]), float(match[2])
    # one timer per timer input, not doubled: tick k of a 100 ms timer is due k * 100 ms
    # after the node began, late ticks are skipped, never bursted, and the span measured
    # begins before the node: no more ticks fit in it however slow the machine (the one
    # extra is the printed span's rounding). An upper bound a load cannot break.
    assert ticks <= elapsed / 0.1 + 1, (ticks, elapsed)
    sink = flow("logs", "live", "sink", home=daemon).stdout
    assert sink.count("got data") >= 40  # its outputs reached their receiver, both times
    assert flow("stop", "live", home=daemon).returncode == 0


def test_every_refusal_is_one_line_and_harms_nothing(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "first")
    start(daemon, tmp_path, "second")
    pid = daemon_pid(daemon)
    holder = subprocess.Popen(
        [sys.executable, str(NODES / "viewer.py")],
        env=flow_env(daemon, {"WANT": "1000000", "VIEWER_RUN": "first"}),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while _status(daemon, "first", "viewer") != "running":
            assert time.monotonic() < deadline, "the holder never attached"
            time.sleep(0.1)
        cases = {
            "no running dataflow with ID or name nope": {"VIEWER_RUN": "nope"},
            "node counter in dataflow first is not dynamic": {
                "VIEWER_RUN": "first", "VIEWER_ID": "counter"},
            "no node ghost in dataflow first": {"VIEWER_RUN": "first", "VIEWER_ID": "ghost"},
            "node viewer in dataflow first is already attached": {"VIEWER_RUN": "first"},
            "node id viewer is dynamic in several running dataflows (": {},
            # both runs' ids begin with the same minute: a prefix that names both
            "is ambiguous": {
                "VIEWER_RUN": os.path.commonprefix(_run_ids(daemon))[:8]},  # noqa: RUF071
        }  # fmt: skip
        for expected, env in cases.items():
            log_before = paths.daemon_log(daemon).read_text().count("dynamic attach refused")
            done = viewer(daemon, **env)
            assert done.returncode == 3, (expected, done.stdout, done.stderr)
            lines = done.stdout.strip().splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith("refused: "), lines[0]
            assert expected in lines[0], lines[0]
            assert "{" not in lines[0]  # D5: real ids, no placeholder left unformatted
            assert psutil.Process(pid).is_running()  # the daemon lives on
            log_after = paths.daemon_log(daemon).read_text().count("dynamic attach refused")
            assert log_after == log_before + 1  # one log line for it
    finally:
        holder.kill()
        holder.wait()
    assert flow("stop", "second", home=daemon).returncode == 0
    assert flow("stop", "first", home=daemon).returncode == 0
    for name in ("first", "second"):
        sink = flow("logs", name, "sink", home=daemon).stdout.splitlines()[-1]
        assert "gaps=0" in sink, sink  # the other runs' messages show no gap


def test_sigkill_of_a_dynamic_node_frees_its_slot(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "crashy")
    victim = subprocess.Popen(
        [sys.executable, str(NODES / "viewer.py")],
        env=flow_env(daemon, {"WANT": "1000000"}), stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while _status(daemon, "crashy", "viewer") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not wait_gone([victim.pid], GONE_S)
    # freed by the heartbeat bound (3 s of silence, checked twice a second); BOUND_S, as
    # each look is a CLI start that a loaded machine can make take seconds
    deadline = time.monotonic() + BOUND_S
    while _status(daemon, "crashy", "viewer") != "dynamic":
        assert time.monotonic() < deadline, "the slot was not freed"
        time.sleep(0.1)
    again = viewer(daemon, WANT="3")
    assert again.returncode == 0, again.stdout
    assert flow("stop", "crashy", home=daemon).returncode == 0


def _run_ids(home: Path) -> list[str]:
    listed = flow("list", "--json", home=home).stdout.splitlines()
    return [json.loads(line)["id"] for line in listed]


def _status(home: Path, run: str, node: str) -> str:
    done = flow("node", "info", run, node, "--json", home=home)
    return str(json.loads(done.stdout)["status"]) if done.returncode == 0 else "?"


def test_node_remove_of_a_dynamic_node_stops_it_and_frees_nothing_for_later(
    daemon: Path, tmp_path: Path
) -> None:
    """A dynamic node has no process of the daemon's: removing one (attached or not) ends
    its slot at once; an attached one is told to stop, and nothing attaches there again."""
    start(daemon, tmp_path, "gone")
    attached = subprocess.Popen(
        [sys.executable, str(NODES / "viewer.py")], env=flow_env(daemon, {"WANT": "1000000"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOUND_S
        while "running" not in _viewer_row(daemon, "gone"):
            assert time.monotonic() < deadline, "the viewer never attached"
            time.sleep(0.1)
        removed = flow("node", "remove", "gone", "viewer", home=daemon, timeout=BOUND_S)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        out, err = attached.communicate(timeout=BOUND_S)  # told to stop: it ends by itself
        assert attached.returncode == 0, out + err
        assert "viewer got" in out, out + err
    finally:
        if attached.poll() is None:
            attached.kill()
            attached.communicate()
    assert _viewer_row(daemon, "gone") == "", "a removed node is still listed"
    again = viewer(daemon, WANT="1", VIEWER_RUN="gone")
    assert again.returncode == 3, again.stdout + again.stderr
    assert "refused: node viewer was removed from dataflow gone" in again.stdout
    assert flow("stop", "gone", home=daemon).returncode == 0


def _viewer_row(home: Path, run: str) -> str:
    listed = flow("node", "list", run, home=home)
    return next((line for line in listed.stdout.splitlines() if line.startswith("viewer")), "")
