#!/usr/bin/env python3
"""Send BATCHES pyarrow struct arrays of fake detections, one per tick, then exit."""

import os

import pyarrow as pa

from node_sdk import Node

BATCHES = int(os.environ.get("BATCHES", "30"))
LABELS = ["person", "car", "bicycle", "dog"]
DETECTION = pa.struct(
    [
        ("label", pa.string()),
        ("score", pa.float32()),
        ("box", pa.list_(pa.float32())),
    ]
)

node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        detections = [
            {
                "label": LABELS[(sent + k) % len(LABELS)],
                "score": ((sent * 37 + k * 11) % 100) / 100,
                "box": [10.0 * k, 20.0 * k, 10.0 * k + 64, 20.0 * k + 48],
            }
            for k in range(1 + sent % 4)
        ]
        node.send_output("detections", pa.array(detections, type=DETECTION), {"batch": sent})
        if sent >= BATCHES:
            break
    elif event["type"] == "STOP":
        break
print(f"detector sent {sent} batches")
