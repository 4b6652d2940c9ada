"""What a node puts in a message's metadata is what its receiver gets, through `flow run`:
NaN, infinities, -0.0, subnormal floats, integers past 64 bits, non-ASCII and control
characters, lists of mixed scalars, and a user's own `timestamp` (node_sdk/extra_json.py
writes the finite flat ones with msgspec, the others with the standard library; either
is read back exactly). Metadata the SDK refuses ends nothing: the sender says why and
goes on."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import flow_run_ok, write_dataflow

SENDER = """
import json, math, os
from node_sdk import Node, NodeError

METADATA = [
    {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "k": 1},
    {"big": 2**80, "neg": -(2**70), "u64": 2**64 - 1, "zero": -0.0, "tiny": 5e-324},
    {"text": "caf\\u00e9 \\u2603 \\x00\\x1f \\"q\\"", "flag": True, "none": None},
    {"mixed": [1, 2.5, "x", None, False, math.nan], "empty": [], "t": (3, 4)},
    {"timestamp": 7, "seq": 123456789},
    {},
]
with Node() as node:
    refusals = []
    for bad in ({"nested": {"a": 1}}, {1: "int key"}, {"b": b"bytes"}):
        try:
            node.send_output("out", b"x", bad)
        except NodeError as exc:
            refusals.append(str(exc).split(":")[0])
    print("refused", json.dumps(refusals), flush=True)
    for meta in METADATA:
        node.send_output("out", b"x", meta)
"""

RECEIVER = """
import os
from node_sdk import Node

with Node() as node, open(os.environ["OUT"], "w") as out:
    for event in node:
        if event["type"] == "INPUT":
            meta = dict(event["metadata"])
            stamp = meta.pop("timestamp")
            out.write(f"{sorted(meta.items())!r}\\t{stamp!r}\\n")
"""

GRAPH = """
nodes:
  - id: sender
    path: sender.py
    outputs: [out]
  - id: receiver
    path: receiver.py
    inputs: {{in: sender/out}}
    env: {{OUT: {out}}}
"""


def expected() -> list[object]:
    """What the receiver gets of each message but flow's `timestamp`, from the same values."""
    nan, inf = float("nan"), float("inf")
    sent: list[dict[str, object]] = [
        {"nan": nan, "inf": inf, "ninf": -inf, "k": 1},
        {"big": 2**80, "neg": -(2**70), "u64": 2**64 - 1, "zero": -0.0, "tiny": 5e-324},
        {"text": 'caf\u00e9 \u2603 \x00\x1f "q"', "flag": True, "none": None},
        {"mixed": [1, 2.5, "x", None, False, nan], "empty": [], "t": [3, 4]},
        {"seq": 123456789},
        {},
    ]
    return [sorted(meta.items()) for meta in sent]


def test_metadata_reaches_the_receiver_exactly(tmp_path: Path, daemon: Path) -> None:
    out = tmp_path / "got.txt"
    yml = write_dataflow(tmp_path, GRAPH.format(out=out),
                         {"sender.py": SENDER, "receiver.py": RECEIVER})  # fmt: skip
    logs = flow_run_ok(daemon, yml)
    got = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(got) == 6, got
    for (items, _), want in zip(got, expected(), strict=True):
        assert items == repr(want)  # repr: NaN is not equal to itself; -0.0 is kept
    stamps = [int(stamp) for _, stamp in got]
    assert stamps[4] == 7  # a user's own `timestamp` wins over flow's
    assert all(s > 10**18 for i, s in enumerate(stamps) if i != 4), stamps
    refused = json.loads(logs.split("refused ", 1)[1].splitlines()[0])
    assert refused == ["metadata key 'nested'", "metadata key 1 is not a str",
                       "metadata key 'b'"], refused  # fmt: skip
