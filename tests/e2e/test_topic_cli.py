"""`flow topic hz|echo|info|pub` as a person uses them, on a real daemon and real nodes: a
30 Hz camera whose frames travel in shared memory, a counter, a listener."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from helpers import NODES, flow, flow_env, start_stream

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed

CAMERA = f"""
nodes:
  - id: camera
    path: {NODES}/camera.py
    inputs:
      tick: flow/timer/millis/33
    outputs: [image]
"""

LISTENED = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
  - id: listener
    path: {NODES}/listener.py
    inputs:
      data: counter/count
      tick: flow/timer/secs/30
"""


def _start(home: Path, tmp_path: Path, name: str, text: str) -> None:
    yml = tmp_path / f"{name}.yml"
    yml.write_text(text)
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr


def _wait_log(home: Path, run: str, node: str, pattern: str) -> str:
    deadline = time.monotonic() + BOUND_S
    while not re.search(pattern, log := flow("logs", run, node, home=home).stdout):
        assert time.monotonic() < deadline, f"{pattern!r} never appeared in {node}'s log"
        time.sleep(0.3)
    return log


def test_hz_count_stops_and_rates_come_from_send_times(daemon: Path, tmp_path: Path) -> None:
    """A 30 Hz shared-memory topic: `--count 60` ends after 60 messages with their overall
    rate, and no line reports more than the camera sends (its timer never bursts)."""
    _start(daemon, tmp_path, "cam", CAMERA)
    hz = flow("topic", "hz", "cam", "camera/image", "--count", "60", "--window", "2s",
              home=daemon, timeout=BOUND_S)  # fmt: skip
    assert hz.returncode == 0, hz.stderr
    final = hz.stdout.splitlines()[-1]
    match = re.fullmatch(r"60 messages in [\d.]+ s: rate ([\d.]+)/s", final)
    assert match, hz.stdout
    rates = [float(r) for r in re.findall(r"rate ([\d.]+)/s", hz.stdout)]
    # 30.3 Hz at most (a late tick is skipped, never bursted): a bound on over-counting
    # with room for scheduling jitter, and a loose floor (a starved camera skips ticks)
    assert 5.0 < float(match.group(1)) <= 32.0, hz.stdout
    assert max(rates) <= 34.0, hz.stdout  # the first windows used to say 35/s
    info = json.loads(flow("topic", "info", "cam", "camera/image", "--json", home=daemon).stdout)
    assert info["seen"]["transport"] == ["shared memory"], info
    assert info["seen"]["encodings"] == ["ndarray uint8 [240, 320, 3]"], info
    assert info["seen"]["size_bytes"]["max"] == 240 * 320 * 3
    for bad, text in ((("--count", "-1"), "--count"), (("--window", "0"), "--window")):
        refused = flow("topic", "hz", "cam", "camera/image", *bad, home=daemon)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert text in refused.stderr
    assert flow("stop", "cam", home=daemon).returncode == 0


def test_echo_prints_times_and_json(daemon: Path, tmp_path: Path) -> None:
    _start(daemon, tmp_path, "echoes", CAMERA)
    plain = flow("topic", "echo", "echoes", "camera/image", "--count", "3", home=daemon)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 3, plain.stdout
    for line in lines:
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} seq \d+: <ndarray uint8 \(240, 320, 3\)>", line)
        assert "{'frame': " in line  # the sender's metadata
    done = flow("topic", "echo", "echoes", "camera/image", "--count", "4", "--json", home=daemon)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line, parse_constant=_not_json) for line in done.stdout.splitlines()]
    assert len(records) == 4
    assert records[0]["metadata"]["exposure"] == "NaN"  # standard JSON: jq reads it
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs)
    stamps = [r["timestamp_ns"] for r in records]
    assert stamps == sorted(stamps)
    first = records[0]
    assert first["topic"] == "camera/image"
    assert first["type"] == "ndarray"
    assert first["dtype"] == "uint8"
    assert first["shape"] == [240, 320, 3]
    assert first["size"] == 240 * 320 * 3
    assert first["metadata"]["frame"] >= 1
    assert first["time"][:4].isdigit()  # ISO 8601, local time with its offset
    assert len(first["value"]) == 1024  # a bounded preview of a large array
    assert flow("stop", "echoes", home=daemon).returncode == 0


def _not_json(token: str) -> None:
    raise AssertionError(f"a line with {token}, which only Python's json reads")


FAST = """
nodes:
  - id: fast
    path: sh
    args: -c 'i=0; while :; do i=$((i+1)); echo $i; done'
    send_stdout_as: lines
    outputs: [lines]
"""


def test_echo_says_how_many_messages_it_skipped_when_it_falls_behind(
    daemon: Path, tmp_path: Path
) -> None:
    """A sender far faster than the terminal: echo's bounded queue keeps the newest, and
    every message it skipped is said on stderr (the gaps in the printed seqs, no more)."""
    _start(daemon, tmp_path, "fast", FAST)
    echo = subprocess.Popen(
        [sys.executable, "-m", "cli", "topic", "echo", "fast", "fast/lines", "--count", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=flow_env(daemon),
    )  # fmt: skip
    time.sleep(3)  # its stdout is not read meanwhile: echo blocks on a full pipe
    out, err = echo.communicate(timeout=BOUND_S)
    assert echo.returncode == 0, err
    seqs = [int(seq) for seq in re.findall(r"seq (\d+):", out)]
    assert len(seqs) == 3000
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(seqs))
    said = [int(n) for n in re.findall(r"warning: (\d+) messages of fast/lines skipped", err)]
    assert gaps > 0, "echo never fell behind: the test did not test anything"
    assert sum(said) == gaps, err
    assert flow("stop", "fast", home=daemon).returncode == 0


def test_info_names_receivers_queues_and_what_it_carries(daemon: Path, tmp_path: Path) -> None:
    start_stream(daemon, tmp_path, "infos", tick_ms=20)
    deadline = time.monotonic() + BOUND_S
    while "no report yet" in (text := flow("topic", "info", "infos", "counter/count",
                                         home=daemon).stdout):  # fmt: skip
        assert time.monotonic() < deadline, text  # the counter's first two stats reports
        time.sleep(0.5)
    assert "topic      counter/count" in text
    assert "node       counter (running)" in text
    assert "receivers  sink/data  drop_oldest, queue 1000" in text
    assert re.search(r"seen       \d+ messages in 2s: str", text), text
    assert "transport  inline" in text
    assert re.search(r"rate       [\d.]+/s \(reported by the node\)", text), text
    bad = flow("topic", "info", "infos", "counter/nope", home=daemon)
    assert bad.returncode == 2
    assert "has no output 'nope'" in bad.stderr
    assert flow("stop", "infos", home=daemon).returncode == 0


def test_pub_sends_into_an_input_that_stays_open(daemon: Path, tmp_path: Path) -> None:
    """Messages go in as a source of their own; their end-of-stream closes only that source:
    the listener still gets the counter's messages afterwards, and no INPUT_CLOSED."""
    _start(daemon, tmp_path, "pubs", LISTENED)
    _wait_log(daemon, "pubs", "listener", r"input data 1 ")
    done = flow("topic", "pub", "pubs", "listener/data", "hello", "world", home=daemon)
    assert done.returncode == 0, done.stderr
    assert "sent 2 messages to listener/data" in done.stdout
    _wait_log(daemon, "pubs", "listener", r"input data hello seq 1\n.*input data world seq 2")
    arrays = flow("topic", "pub", "pubs", "listener/data", "[1, 2, 3]", "--as", "json",
                  "--repeat", "2", "--meta", '{"from": "test"}', home=daemon)  # fmt: skip
    assert arrays.returncode == 0, arrays.stderr
    # a pyarrow array prints over several lines: `[`, `1,`, `2,`, `3`, `] seq 2`
    _wait_log(daemon, "pubs", "listener", r"input data \[\n.* 1,\n.* 2,\n.* 3\n.*\] seq 2")
    # the counter's own messages still come after the published ones ended
    log = _wait_log(daemon, "pubs", "listener", r"world seq 2\n(.*\n)*.*input data \d+ seq")
    assert "INPUT_CLOSED" not in log
    # refused in one line each
    for args, text in (
        (("listener/tick", "x"), "is a timer"),
        (("listener/nope", "x"), "has no input 'nope'"),
        (("nobody/data", "x"), "no node 'nobody'"),
        (("listener/data", "{", "--as", "json"), "is not JSON"),
        (("listener/data", "x", "--repeat", "20000"), "at most 10000"),
    ):
        bad = flow("topic", "pub", "pubs", *args, home=daemon)
        assert bad.returncode in (1, 2), (args, bad.stderr)
        assert text in bad.stderr, (args, bad.stderr)
        assert bad.stderr.count("\n") == 1, bad.stderr
    # a message sent twice (the same source and sequence number) is refused, and `flow node
    # info` says how many were (its JSON had the count, its table did not)
    _send_twice(daemon, "pubs")
    deadline = time.monotonic() + 15
    while "in data: 1 refused" not in (info := flow("node", "info", "pubs", "listener",
                                                    home=daemon).stdout):  # fmt: skip
        assert time.monotonic() < deadline, info
        time.sleep(0.3)
    assert flow("stop", "pubs", home=daemon).returncode == 0


def _send_twice(home: Path, run: str) -> None:
    """One data frame to listener/data (node 1, input 0) twice, from a source of its own."""
    import zmq

    from node_sdk import paths, wire

    run_id = json.loads(flow("list", "--json", home=home).stdout.splitlines()[0])["id"]
    endpoint = paths.run_socket_dir(paths.socket_dir(home), run_id) / "n1i0"
    extra = wire.encode_extra("~pub-twice")
    frame = wire.pack_header(wire.KIND_BYTES, 1, 1, time.time_ns(), extra, wire.FLAG_PACKED)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.connect(f"ipc://{endpoint}")
        for _ in range(2):
            push.send(frame + b"again")
        push.close(linger=5000)
    finally:
        ctx.term()


def test_pub_into_a_backpressure_input_waits_for_its_credits(
    daemon: Path, tmp_path: Path
) -> None:
    """More messages than the input's queue: sent against the credits the node pays back,
    every one delivered, in order."""
    graph = LISTENED.replace("data: counter/count",
                             "data: {source: counter/count, queue_policy: backpressure, "
                             "queue_size: 4}")  # fmt: skip
    _start(daemon, tmp_path, "credits", graph)
    _wait_log(daemon, "credits", "listener", r"input data 1 ")
    values = [f"v{n}" for n in range(1, 26)]
    done = flow("topic", "pub", "credits", "listener/data", *values, home=daemon)
    assert done.returncode == 0, done.stderr
    log = _wait_log(daemon, "credits", "listener", r"input data v25 seq 25")
    got = re.findall(r"input data (v\d+) seq (\d+)", log)
    assert got == [(f"v{n}", str(n)) for n in range(1, 26)]
    assert flow("stop", "credits", home=daemon).returncode == 0
