"""Payloads that do not decode, sent into a node's input by a hostile or broken peer: each is
refused and counted, one log line says so, and the node goes on with the messages after
them (before, the first one raised NodeError out of `next()` and ended the node)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import flow_run_ok, write_dataflow

# a well-formed header (so the frame is taken) in front of a payload that does not decode:
# a numpy payload of the wrong size, garbage as an Arrow stream, as arrow buffers, as a
# shared-memory descriptor, a kind no flow node sends, a str that is not UTF-8, metadata
# that is not an object, an Arrow stream Arrow reads whose string offsets point 1 GiB past
# its data (taken, it crashed the process that printed it); and, malformed, dropped before
# they are queued, a source that is not a name and metadata with a lone surrogate (taken, a
# relay sending it on died)
SENDER = """
import json, os, struct, time
import pyarrow as pa
import zmq
from node_sdk import Node, wire
from node_sdk.wire import FLAG_PACKED, HEADER, MAGIC

node = Node()
endpoint = json.loads(os.environ["FLOW_NODE_CONFIG"])["outputs"]["out"][0]["endpoint"]
offsets = pa.py_buffer(struct.pack("<4i", 0, 1 << 30, 2, 3))
past_its_data = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"abc")])
bad = [
    (3, {"dt": "<u8", "sh": [4]}, b"abc"),
    (4, {}, b"\\xff\\xff\\xff\\xff\\x10\\x00\\x00\\x00not arrow at all"),
    (7, {}, b"\\x00" * 40),
    (6, {}, b"FLWS" + b"\\x00" * 60),
    (99, {}, b"?"),
    (2, {}, b"\\xff\\xfe not UTF-8"),
    (1, {"m": [1, 2]}, b"metadata that is not an object"),
    (4, {}, bytes(wire.encode_payload(past_its_data).data)),
    (1, {"m": {"note": "\\ud800"}}, b"metadata no relay could send on"),
]
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.connect(endpoint)
# a frame whose source is not a name: malformed, dropped before it is queued
raw = json.dumps({"s": ["sender/out"]}).encode()
push.send(HEADER.pack(MAGIC, 1, FLAG_PACKED, 0, 0, 99, 0, len(raw)) + raw + b"x")
for seq, (kind, extra, payload) in enumerate(bad, 1):
    # generation 0: frames of a "generation" before the sender's own, so its messages,
    # numbered from 1 in generation 1, are not taken for repeats of these
    raw = json.dumps({"s": "sender/out", **extra}).encode()
    push.send(HEADER.pack(MAGIC, kind, FLAG_PACKED, 0, 0, seq, 0, len(raw)) + raw + payload)
push.close(linger=5000)
ctx.term()
time.sleep(0.5)  # they are in before the sender's own messages
for i in range(1, 21):
    node.send_output("out", i.to_bytes(4, "little"))
"""

RECEIVER = """
import json, os
from node_sdk import Node

got = []
with Node() as node:
    for event in node:
        if event.type == "INPUT":
            got.append(int.from_bytes(event.value, "little"))
    refused = node.statistics().inputs["in"].refused
    # what its `stats` report counts as delivered (node_sdk/latency.py), since the start
    delivered = node._events.traffic.report()["in"]["delivered"]
with open(os.environ["OUT"], "w") as out:
    json.dump({"got": got, "refused": refused, "delivered": delivered}, out)
"""

YAML = """
nodes:
  - id: sender
    path: sender.py
    outputs: [out]
  - id: receiver
    path: receiver.py
    inputs:
      in: {{source: sender/out, queue_size: 100}}
    env: {{OUT: '{out}'}}
"""


def test_undecodable_payloads_are_refused_and_the_node_goes_on(
    flow_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "got.json"
    yml = write_dataflow(tmp_path, YAML.format(out=out),
                         {"sender.py": SENDER, "receiver.py": RECEIVER})  # fmt: skip
    logs = flow_run_ok(flow_home, yml)
    result = json.loads(out.read_text())
    assert result["got"] == list(range(1, 21))
    assert result["refused"] == 8  # each bad one, whether decoded or refused as from before
    assert result["delivered"] == 20  # a refused one is not also counted as delivered
    assert "cannot be decoded, the last from 'sender/out'" in logs, logs[-3000:]


# a peer that floods an input for FLOOD_S with payloads that do not decode (garbage as a
# numpy array), numbered on (each is queued, then refused when taken), or all numbered 1
# (every one after the first refused as a repeat when it comes in); the receiver's
# `next(timeout)` must still come back within its timeout
FLOOD_S = 3.0
FLOODER = """
import json, os, time
import zmq
from node_sdk import Node
from node_sdk.wire import FLAG_PACKED, HEADER, MAGIC

node = Node()
endpoint = json.loads(os.environ["FLOW_NODE_CONFIG"])["outputs"]["out"][0]["endpoint"]
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.sndhwm = 100_000
push.connect(endpoint)
raw = json.dumps({"s": "sender/out", "dt": "<u8", "sh": [4]}).encode()
seq = 0
end = time.monotonic() + FLOOD_S
while time.monotonic() < end:
    for _ in range(1000):
        seq += STEP
        push.send(HEADER.pack(MAGIC, 3, FLAG_PACKED, 0, 0, max(seq, 1), 0, len(raw)) + raw + b"abc")
push.close(linger=0)
ctx.term()
node.close()
"""

WAITER = """
import json, os, time
from node_sdk import Node

longest = 0.0
calls = 0
with Node() as node:
    while calls < 10_000:
        began = time.monotonic()
        event = node.next(timeout=0.2)
        longest = max(longest, time.monotonic() - began)
        calls += 1
        if event is not None and event.type == "STOP":
            break
    refused = node.statistics().inputs["in"].refused
with open(os.environ["OUT"], "w") as out:
    json.dump({"longest": longest, "refused": refused}, out)
"""


@pytest.mark.parametrize("step", [1, 0], ids=["numbered-on", "repeated"])
def test_a_flood_of_refused_payloads_never_holds_next_past_its_timeout(
    flow_home: Path, tmp_path: Path, step: int
) -> None:
    out = tmp_path / "got.json"
    sender = FLOODER.replace("FLOOD_S", repr(FLOOD_S)).replace("STEP", str(step))
    yml = write_dataflow(tmp_path, YAML.format(out=out).replace("receiver.py", "waiter.py"),
                         {"sender.py": sender, "waiter.py": WAITER})  # fmt: skip
    flow_run_ok(flow_home, yml)
    result = json.loads(out.read_text())
    assert result["refused"] > 1000  # it was flooded
    # 0.2 s asked; before, it came back only once the flood was over (FLOOD_S)
    assert result["longest"] < FLOOD_S / 2, result
