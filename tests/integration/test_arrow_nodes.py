"""pyarrow arrays between real node processes (fake daemon): fixed-width types as their own
buffers (kind 7), inline and in shared memory, types in turn on one output, the rest as
Arrow IPC streams, each arriving exact and read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakes import FakeNodeRouter, node_configs
from helpers import finish, records

from daemon.keeper.shm_cleanup import remove_run_segments

VALUES = """
import numpy as np
import pyarrow as pa

base = pa.array([None if i % 3 == 0 else i for i in range(50)], pa.int64())
VALUES = [
    pa.array(np.arange(8, dtype=np.uint8)),
    base.slice(5, 20),  # a slice with nulls, off a byte boundary
    pa.array([1.5, None, 2.5], pa.float32()),
    pa.array([True, None, False] * 5).slice(1, 9),
    pa.array(["a", None, "c"]),  # a string: an IPC stream
    pa.StructArray.from_arrays([pa.array([1, 2], pa.uint32()), pa.array([3, 4], pa.uint32())],
                               names=["x", "y"]),  # the batch message flow writes (kind 4)
    pa.array(np.arange(100_000, dtype=np.uint16)),  # shared memory
    base.cast(pa.int32()).view(pa.date32()),
    pa.StructArray.from_arrays([pa.array(["a", "b"]), base.slice(1, 2)],
                               names=["s", "i"]),  # a struct with a string: an IPC stream
    pa.StructArray.from_arrays([pa.array(np.arange(5000), mask=np.arange(5000) % 7 == 0),
                                pa.array(np.ones(5000))], names=["i", "f"]),  # shared memory
    pa.array(["cat", "dog", "cat", None]).dictionary_encode(),  # its dictionary with it
    pa.StructArray.from_arrays([pa.array(np.arange(1024)), pa.array(np.ones(1024))],
                               names=["i", "f"]),  # 16 KiB of values: the batch flow writes
    pa.StructArray.from_arrays([pa.array(np.arange(9000)), pa.array(np.ones(9000))],
                               names=["i", "f"]),  # past that, in shared memory: its buffers
    # after an int64 array (the sender skips the type checks of a class it has seen): a
    # chunked array is still combined, and an int64 array after it is still sent as one
    pa.chunked_array([[1, 2], [None]], pa.int64()),
    pa.array([7, 8], pa.int64()),
]
"""

SENDER = VALUES + """
from node_sdk import Node

with Node() as node:
    for round_ in range(2):
        for i, value in enumerate(VALUES):
            node.send_output("out", value, {"i": i} if (i + round_) % 2 else None)
"""

RECEIVER = VALUES + """
import json, os
from node_sdk import Node

with open(os.environ["OUT"], "w") as out, Node() as node:
    for event in node:
        if event["type"] != "INPUT":
            out.write(json.dumps({"type": str(event["type"])}) + "\\n")
            continue
        value = event["value"]
        expected = VALUES[(event["seq"] - 1) % len(VALUES)]
        if isinstance(expected, pa.ChunkedArray):
            expected = expected.combine_chunks()
        writable = any(b is not None and b.is_mutable for b in value.buffers())
        out.write(json.dumps({"type": "INPUT", "seq": event["seq"], "arrow": str(value.type),
                              "same": value.equals(expected) and value.type == expected.type,
                              "writable": writable,
                              "i": event["metadata"].get("i")}) + "\\n")
        out.flush()
"""


def test_arrow_arrays_of_types_in_turn_cross_processes_exact(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, queue_size=100)
    out = tmp_path / "events.jsonl"
    try:
        receiver = spawn("receiver", RECEIVER, receiver_cfg, OUT=str(out))
        sender = spawn("sender", SENDER, sender_cfg)
        fake_daemon.wait_for("hello", {"sender", "receiver"})
        fake_daemon.start_all()
        finish(sender)
        finish(receiver)
    finally:
        remove_run_segments(str(sender_cfg["run"]))
    events = records(out)
    inputs = [e for e in events if e["type"] == "INPUT"]
    count = 15
    assert [e["seq"] for e in inputs] == list(range(1, 2 * count + 1))
    for n, event in enumerate(inputs):
        assert event["same"], (n, event)
        assert not event["writable"], (n, event)
        i, round_ = n % count, n // count
        assert event["i"] == (i if (i + round_) % 2 else None), (n, event)
    assert [e["arrow"] for e in inputs[:count]] == [
        "uint8", "int64", "float", "bool", "string", "struct<x: uint32, y: uint32>", "uint16",
        "date32[day]", "struct<s: string, i: int64>", "struct<i: int64, f: double>",
        "dictionary<values=string, indices=int32, ordered=0>", "struct<i: int64, f: double>",
        "struct<i: int64, f: double>", "int64", "int64",
    ]
    assert [e["type"] for e in events[len(inputs) :]] == ["INPUT_CLOSED", "STOP"]
