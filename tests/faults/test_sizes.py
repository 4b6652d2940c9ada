"""Sizes (matrix row 26, issue item 10): a rogue 1 GiB frame, a 10,000-node dataflow file."""

from __future__ import annotations

import json
import mmap
import threading
import time
from pathlib import Path

import psutil
import zmq
from helpers import flow, stream_graph
from procs import RawClient, node_processes

from node_sdk import paths

GIB = 1 << 30
MIB = 1 << 20


def _run_id(home: Path, name: str) -> str:
    runs = [json.loads(x) for x in flow("list", "--json", home=home).stdout.splitlines()]
    return next(r["id"] for r in runs if r["name"] == name)


def test_row26_a_rogue_1gib_frame_is_cut_off_at_the_input(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(tick_ms=10))
    assert flow("start", str(yml), "--detach", "--name", "big", home=daemon).returncode == 0
    run_id = _run_id(daemon, "big")
    deadline = time.monotonic() + 10
    while "sink" not in (live := node_processes(run_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    sink = psutil.Process(live["sink"][0])
    time.sleep(0.5)
    idle = sink.memory_info().rss
    # the sink's one input (node 1, input 0); the frame is anonymous zero pages, sent
    # without a copy, so this test does not hold the GiB it sends
    endpoint = f"ipc://{paths.socket_dir(daemon) / paths.run_short_id(run_id) / 'n1i0'}"
    frame = mmap.mmap(-1, GIB)
    context = zmq.Context()
    rogue = context.socket(zmq.PUSH)
    rogue.setsockopt(zmq.LINGER, 0)
    try:
        rogue.connect(endpoint)
        rogue.send(memoryview(frame), copy=False)
        peak = idle
        end = time.monotonic() + 4
        while time.monotonic() < end:
            peak = max(peak, sink.memory_info().rss)
            time.sleep(0.05)
    finally:
        context.destroy(linger=0)
        frame.close()
    assert peak < idle + 64 * MIB, f"sink RSS {idle / MIB:.0f} -> {peak / MIB:.0f} MiB"
    assert sink.status() != psutil.STATUS_ZOMBIE  # alive: it raised NoSuchProcess else
    assert flow("stop", "big", home=daemon).returncode == 0
    summary = flow("logs", "big", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary, summary  # its real upstream was never cut off


def test_item10_a_10000_node_file_does_not_block_the_daemon(daemon: Path, tmp_path: Path) -> None:
    lines = ["nodes:"]
    for i in range(10_000):
        lines.append(f"  - id: n{i}\n    path: dynamic\n    inputs: {{a: n{i + 1}/o}}\n"
                     "    outputs: [o]")  # fmt: skip
    yml = tmp_path / "huge.yml"
    yml.write_text("\n".join(lines) + "\n")
    result: list[int] = []
    took: list[float] = []

    def start() -> None:
        began = time.monotonic()
        result.append(flow("start", str(yml), "--detach", home=daemon).returncode)
        took.append(time.monotonic() - began)

    starter = threading.Thread(target=start)
    client = RawClient(daemon)
    try:
        assert client.request("ping", {}, id_="warm")["ok"] is True
        starter.start()
        worst = 0.0
        count = 0
        while starter.is_alive() and count < 400:  # pings while the daemon reads the file
            began = time.monotonic()
            assert client.request("ping", {}, id_=f"p{count}")["ok"] is True
            worst = max(worst, time.monotonic() - began)
            count += 1
            time.sleep(0.02)
        starter.join(30)
    finally:
        client.close()
    assert result == [2], result  # refused: more nodes than a dataflow may hold
    assert count >= 5, count
    # a daemon blocked by the check answers no ping until it is done: the worst wait is then
    # the whole check; a loaded machine stalls any process now and then, for well under
    # half of it
    assert worst < max(0.5, took[0] / 2), f"a ping waited {worst:.2f}s of {took[0]:.2f}s"
