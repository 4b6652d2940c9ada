"""Large payloads through shared memory between real node processes (fake daemon)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNodeRouter, node_configs
from helpers import finish, records, run_segments

from daemon.keeper.shm_cleanup import remove_run_segments
from node_sdk import shm

SENDER = """
import json, os, time
from node_sdk import Node
import numpy as np
import pyarrow as pa

from node_sdk import shm

mode, n, size = os.environ["MODE"], int(os.environ.get("N", "0")), int(os.environ.get("SIZE", "0"))
published = []  # the receiver count of each segment published: one per message, shared
publish = shm.Pool.publish
shm.Pool.publish = lambda pool, segment: (
    published.append(len(segment.holders)), publish(pool, segment))[1]
with Node() as node:
    if mode == "kinds":
        node.send_output("out", bytes(range(256)) * 400, {"k": 1})
        node.send_output("out", bytearray(b"\\x07" * 70_000))
        node.send_output("out", memoryview(b"\\x09" * 80_000))
        node.send_output("out", "\\u2713" * 40_000)
        node.send_output("out", np.arange(65_536, dtype=np.float32).reshape(256, 256))
        node.send_output("out", np.arange(40_000, dtype=np.int64)[::2])  # not contiguous
        node.send_output("out", pa.array(range(20_000), pa.int64()))
        node.send_output("out", pa.array([{"a": i, "b": str(i)} for i in range(5000)]))
        with node.send_output_buffer("out", 100_000, {"raw": True}) as buf:
            buf[:] = b"\\x05" * 100_000
        with node.send_output_buffer("out", 4 * 30_000, dtype="<f4", shape=(300, 100)) as buf:
            np.frombuffer(buf, dtype="<f4")[:] = 2.5
        # a struct of fixed-width fields: its own buffers (kind 7) in the segment
        node.send_output("out", pa.StructArray.from_arrays(
            [pa.array(range(5000), pa.int64()), pa.array([1.5] * 5000)], names=["i", "f"]))
        with node.send_output_buffer("out", 10) as buf:  # below the threshold: inline
            buf[:] = b"0123456789"
    elif mode == "numbered":
        for i in range(n):
            with node.send_output_buffer("out", size) as buf:
                buf[:8] = i.to_bytes(8, "little")
                buf[size - 8:] = i.to_bytes(8, "little")
    elif mode == "refused":  # metadata refused once the block ends: the segment goes back
        for i in range(n):
            try:
                with node.send_output_buffer("out", size, {"x": object()}) as buf:
                    buf[:8] = i.to_bytes(8, "little")
            except Exception as exc:
                published.append(type(exc).__name__)
        with node.send_output_buffer("out", size) as buf:  # then one that goes
            buf[:8] = buf[size - 8:] = (0).to_bytes(8, "little")
    pool = node._sender._pool
    # on a loaded machine a receiver may let go later than the close's own wait (0.5 s): it
    # is waited for here, bounded, so what the tests look at is what the close unlinks. A
    # numbered receiver keeps its first and its last view.
    held = 0 if mode == "kinds" else 2 * len(node._sender.outputs["out"].edges)
    deadline = time.monotonic() + 20
    while pool and pool.in_flight > held and time.monotonic() < deadline:
        pool.poll_releases()
        time.sleep(0.01)
    info = {"segments": len(pool._segments) if pool else 0,
            "fallbacks": pool.fallbacks if pool else 0, "published": published,
            "stats": {k: [v.sent, v.dropped] for k, v in node.statistics().outputs.items()}}
print(json.dumps(info), flush=True)
"""

RECEIVER = """
import hashlib, json, os, time
from node_sdk import Node

def describe(v):
    if isinstance(v, memoryview):
        return {"kind": "bytes", "n": v.nbytes, "md5": hashlib.md5(v).hexdigest(),
                "readonly": v.readonly}
    if isinstance(v, str):
        return {"kind": "str", "n": len(v), "md5": hashlib.md5(v.encode()).hexdigest()}
    if type(v).__module__.startswith("numpy"):
        return {"kind": "numpy", "dtype": v.dtype.str, "shape": list(v.shape),
                "md5": hashlib.md5(v.tobytes()).hexdigest(), "writeable": bool(v.flags.writeable)}
    return {"kind": "arrow", "type": str(v.type), "n": len(v), "head": v.slice(0, 2).to_pylist()}

mode = os.environ["MODE"]
delay = float(os.environ.get("DELAY", "0"))
held, bad, seqs = None, [], []
with open(os.environ["OUT"], "w") as out, Node() as node:
    for event in node:
        if event["type"] != "INPUT":
            continue
        value = event.value
        if mode == "kinds":
            out.write(json.dumps({"meta": event.metadata, "value": describe(value)}) + "\\n")
            continue
        i = int.from_bytes(value[:8], "little")
        if i != int.from_bytes(value[-8:], "little") or i != event.seq - 1:
            bad.append([event.seq, i])
        seqs.append(event.seq)
        if held is None:
            held, first = value, bytes(value)  # keep the first view for the whole run
        if delay:
            time.sleep(delay)
    if mode != "kinds":
        out.write(json.dumps({"seqs": seqs, "bad": bad,
                              "held_intact": held is not None and bytes(held) == first}) + "\\n")
"""


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Run ids whose segments are removed after the test, as the daemon does at run end."""
    runs: list[str] = []
    yield runs
    for run in runs:
        remove_run_segments(run)


def _run(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, mode: str,
    cleanup: list[str],
    receivers: int = 1, policy: str = "drop_oldest", queue_size: int = 10, **env: str,
) -> tuple[dict[str, Any], list[list[dict[str, Any]]], str]:  # fmt: skip
    sender_cfg, receiver_cfg = node_configs(
        fake_daemon, sockdir, policy=policy, queue_size=queue_size
    )
    edge = sender_cfg["outputs"]["out"][0]
    cleanup.append(sender_cfg["run"])
    names, outs, children = [], [], []
    for n in range(receivers):
        name = f"receiver{n}"
        endpoint = edge["endpoint"] + f"x{n}"
        cfg = json.loads(json.dumps(receiver_cfg))
        cfg["node"] = name
        cfg["inputs"]["in"]["endpoint"] = endpoint
        names.append(name)
        outs.append(tmp_path / f"{name}.jsonl")
        children.append(spawn(name, RECEIVER, cfg, OUT=str(outs[-1]), MODE=mode, **env))
    sender_cfg["outputs"]["out"] = [
        {**edge, "endpoint": edge["endpoint"] + f"x{n}", "node": names[n]} for n in range(receivers)
    ]
    sender = spawn("sender", SENDER, sender_cfg, MODE=mode, **env)
    fake_daemon.wait_for("hello", {"sender", *names})
    fake_daemon.start_all()
    info = json.loads(finish(sender)[0])
    for child in children:
        finish(child)
    run = sender_cfg["run"]
    return info, [records(out) for out in outs], run


def test_every_kind_round_trips_through_shared_memory(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    info, [events], run = _run(fake_daemon, sockdir, spawn, tmp_path, "kinds", cleanup)
    assert info["segments"] >= 1
    assert info["fallbacks"] == 0
    assert info["stats"] == {"out": [12, 0]}
    values = [e["value"] for e in events]
    import hashlib

    import numpy as np

    def md5(raw: bytes) -> str:
        return hashlib.md5(raw).hexdigest()

    assert values[0] == {"kind": "bytes", "n": 102_400, "readonly": True,
                         "md5": md5(bytes(range(256)) * 400)}  # fmt: skip
    assert events[0]["meta"]["k"] == 1
    assert values[1]["md5"] == md5(b"\x07" * 70_000)
    assert values[2]["md5"] == md5(b"\x09" * 80_000)
    assert values[3] == {"kind": "str", "n": 40_000, "md5": md5(("\u2713" * 40_000).encode())}
    assert values[4] == {"kind": "numpy", "dtype": "<f4", "shape": [256, 256], "writeable": False,
                         "md5": md5(np.arange(65_536, dtype=np.float32).tobytes())}  # fmt: skip
    assert values[5]["md5"] == md5(np.arange(40_000, dtype=np.int64)[::2].tobytes())
    assert values[6] == {"kind": "arrow", "type": "int64", "n": 20_000, "head": [0, 1]}
    assert values[7]["type"] == "struct<a: int64, b: string>"
    assert values[7]["head"] == [{"a": 0, "b": "0"}, {"a": 1, "b": "1"}]
    assert values[8]["md5"] == md5(b"\x05" * 100_000)
    assert events[8]["meta"]["raw"] is True
    assert values[9] == {"kind": "numpy", "dtype": "<f4", "shape": [300, 100], "writeable": False,
                         "md5": md5(np.full(30_000, 2.5, np.float32).tobytes())}  # fmt: skip
    assert values[10] == {"kind": "arrow", "type": "struct<i: int64, f: double>", "n": 5000,
                          "head": [{"i": 0, "f": 1.5}, {"i": 1, "f": 1.5}]}  # fmt: skip
    assert values[11]["md5"] == md5(b"0123456789")  # the last: the receiver holds no segment
    assert run_segments(run) == []  # every segment was released, so the sender unlinked it


def test_a_buffer_whose_metadata_is_refused_gives_its_segment_back(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    tries = 2 * shm.MAX_WORKING_SET
    info, [events], _ = _run(fake_daemon, sockdir, spawn, tmp_path, "refused", cleanup,
                             N=str(tries), SIZE=str(96 * 1024))  # fmt: skip
    # each refused block's segment given back (published to no one), then one sent
    assert info["published"] == [0, "NodeError"] * tries + [1]
    assert info["segments"] == 1  # each refused block's segment was taken again
    assert events[-1]["seqs"] == [1]
    assert events[-1]["bad"] == []


def test_a_held_view_stays_intact_while_1000_more_arrive(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    sent = 1001
    info, [events], run = _run(
        fake_daemon, sockdir, spawn, tmp_path, "numbered", cleanup,
        policy="backpressure", queue_size=4,
        N=str(sent), SIZE=str(96 * 1024),
    )  # fmt: skip
    result = events[-1]
    assert result["bad"] == []
    assert result["seqs"] == list(range(1, sent + 1))
    assert result["held_intact"] is True
    assert info["fallbacks"] == 0
    assert 2 <= info["segments"] < 50  # released segments were reused, the held one never
    # the sender exited while the receiver still held the first view: that segment is left
    # in place (never unlinked under a reader) for the daemon's cleanup at the run's end
    assert 1 <= len(run_segments(run)) <= 2


def test_fan_out_shares_one_segment_per_message(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    sent = 200
    info, outs, run = _run(
        fake_daemon, sockdir, spawn, tmp_path, "numbered", cleanup,
        receivers=3, policy="backpressure",
        queue_size=4, N=str(sent), SIZE=str(256 * 1024),
    )  # fmt: skip
    for events in outs:
        assert events[-1]["bad"] == []
        assert events[-1]["seqs"] == list(range(1, sent + 1))
    assert info["stats"] == {"out": [sent, 0]}  # each message once, to three receivers
    # one segment per message, published to the three receivers at once: never 3 copies
    assert info["published"] == [3] * sent
    # and segments come back to be reused; a release later than making a segment costs
    # (a loaded machine) makes one more, so the count is a bound, far below one a message
    assert info["segments"] < sent // 2
    # each receiver still held its first and its last message when the sender exited
    assert 1 <= len(run_segments(run)) <= 7


def test_drop_oldest_gives_back_the_segments_it_drops(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    sent = 300
    info, [events], run = _run(
        fake_daemon, sockdir, spawn, tmp_path, "numbered", cleanup, queue_size=2, DELAY="0.002",
        N=str(sent), SIZE=str(128 * 1024),
    )  # fmt: skip
    seqs = events[-1]["seqs"]
    assert events[-1]["bad"] == []
    assert seqs == sorted(seqs)
    assert seqs[-1] == sent
    assert info["fallbacks"] == 0
    # dropped ones were given back too, and unlinked by the sender as it closed: only the
    # held first and the last (still referenced when the receiver closed) are left
    assert len(run_segments(run)) <= 2 < info["segments"]


def test_the_fake_daemon_removes_what_a_sender_left_at_close(
    sockdir: Path, spawn: Any, tmp_path: Path, cleanup: list[str]
) -> None:
    """A receiver that holds a view past its sender's close leaves that segment in
    /dev/shm; the real daemon removes it when the run ends, and so must the fake one, or
    every test on it leaks (two such segments were found in /dev/shm)."""
    router = FakeNodeRouter(f"ipc://{sockdir}/own-nodes")
    try:
        _, _, run = _run(
            router, sockdir, spawn, tmp_path, "numbered", cleanup, N="1", SIZE=str(96 * 1024)
        )
        assert run_segments(run)  # the held first view: the sender left its segment in place
    finally:
        router.close()
    assert run_segments(run) == []
