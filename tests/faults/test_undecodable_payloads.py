"""Payloads that do not decode, sent into a node's input by a hostile or broken peer: each is
refused and counted, one log line says so, and the node goes on with the messages after
them (before, the first one raised NodeError out of `next()` and ended the node)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow_run_ok, write_dataflow

# a well-formed header (so the frame is taken) in front of a payload that does not decode:
# a numpy payload of the wrong size, garbage as an Arrow stream, as arrow buffers, as a
# shared-memory descriptor, a kind no flow node sends, a str that is not UTF-8, metadata
# that is not an object; and a source that is not a name
SENDER = """
import json, os, time
import zmq
from node_sdk import Node
from node_sdk.wire import FLAG_PACKED, HEADER, MAGIC

node = Node()
endpoint = json.loads(os.environ["FLOW_NODE_CONFIG"])["outputs"]["out"][0]["endpoint"]
bad = [
    (3, {"dt": "<u8", "sh": [4]}, b"abc"),
    (4, {}, b"\\xff\\xff\\xff\\xff\\x10\\x00\\x00\\x00not arrow at all"),
    (7, {}, b"\\x00" * 40),
    (6, {}, b"FLWS" + b"\\x00" * 60),
    (99, {}, b"?"),
    (2, {}, b"\\xff\\xfe not UTF-8"),
    (1, {"m": [1, 2]}, b"metadata that is not an object"),
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
with open(os.environ["OUT"], "w") as out:
    json.dump({"got": got, "refused": refused}, out)
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
    assert result["refused"] == 7  # each bad one, whether decoded or refused as from before
    assert "cannot be decoded" in logs, logs[-3000:]
