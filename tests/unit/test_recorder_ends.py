"""The recorder told which topics have ended reads on until their end-of-stream has come:
lines a node sent before it exited, still on their way when the recording stopped (a
keeper on another machine may not have finished its tcp:// handshake yet), are recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import zmq
from mcap.reader import make_reader

from node_sdk.frames import encode_data, encode_eos


def _recorder(tmp_path: Path, topics: dict[str, str]) -> subprocess.Popen[bytes]:
    config = {"path": str(tmp_path / "r.mcap"), "topics": topics, "run": {"id": "r"}}
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon.recorder", json.dumps(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["ready"] is True
    return process


def _stop(process: subprocess.Popen[bytes], said: bytes) -> None:
    assert process.stdin is not None
    process.stdin.write(said)
    process.stdin.close()


def _late_lines(endpoint: str, count: int) -> None:
    """What a node printed, reaching the recorder only after its recording was stopped."""
    context = zmq.Context()
    try:
        push = context.socket(zmq.PUSH)
        push.connect(endpoint)
        for seq in range(1, count + 1):
            push.send_multipart(encode_data(str(seq), source="n/lines", generation=1,
                                            seq=seq, timestamp_ns=time.time_ns()))  # fmt: skip
        push.send_multipart(encode_eos("n/lines", 1, count))
        push.close(linger=2000)
    finally:
        context.term()


def _summary(process: subprocess.Popen[bytes]) -> dict[str, object]:
    assert process.stdout is not None
    out = process.stdout.read()  # to its end: the recorder exits after its summary
    process.stdout.close()
    assert process.wait(timeout=30) == 0
    summary = json.loads(out.splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


def test_a_topic_said_to_have_ended_is_read_until_its_end_of_stream(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/lines.sock"
    recorder = _recorder(tmp_path, {"n/lines": endpoint})
    _stop(recorder, b'{"ends": ["n/lines", "not/recorded"]}\n')
    time.sleep(0.6)  # past the 0.2 s of quiet that ends a drain when no end is awaited
    _late_lines(endpoint, 60)
    summary = _summary(recorder)
    assert summary["recorded"] == 60, summary
    assert summary["missed"] == 0, summary
    with (tmp_path / "r.mcap").open("rb") as file:
        assert sum(1 for _ in make_reader(file).iter_messages()) == 60


def test_without_ends_the_recorder_stops_once_quiet(tmp_path: Path) -> None:
    """A `flow record` that ends while the node runs on waits for no end-of-stream: it
    finishes once its sockets are quiet, well within the drain's bound."""
    recorder = _recorder(tmp_path, {"n/lines": f"ipc://{tmp_path}/lines.sock"})
    began = time.monotonic()
    _stop(recorder, b"")
    summary = _summary(recorder)
    assert summary["recorded"] == 0, summary
    assert time.monotonic() - began < 2.5  # not the 3 s bound of a drain that waits


def test_an_end_that_never_comes_is_waited_for_boundedly(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, {"n/lines": f"ipc://{tmp_path}/lines.sock"})
    began = time.monotonic()
    _stop(recorder, b'{"ends": ["n/lines"]}\n')  # a node killed before its end went out
    summary = _summary(recorder)
    assert summary["recorded"] == 0, summary
    assert 2.5 < time.monotonic() - began < 15


def test_a_stop_line_that_is_not_json_is_no_end_to_wait_for(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, {"n/lines": f"ipc://{tmp_path}/lines.sock"})
    began = time.monotonic()
    _stop(recorder, b"\xff{not json\n" * 10_000)
    assert _summary(recorder)["recorded"] == 0
    assert time.monotonic() - began < 2.5
