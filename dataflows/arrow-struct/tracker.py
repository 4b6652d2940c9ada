#!/usr/bin/env python3
"""Print the detections scoring at least THRESHOLD; ends when the detector is done."""

from node_sdk import Node

THRESHOLD = 0.5

node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "detections":
        batch = event["value"]  # a pyarrow StructArray, type as sent
        kept = [d for d in batch.to_pylist() if d["score"] >= THRESHOLD]
        labels = ", ".join(f"{d['label']} {d['score']:.2f}" for d in kept) or "nothing"
        found = f"{len(batch)} detection" + ("" if len(batch) == 1 else "s")
        print(f"batch {event['metadata'].get('batch')}: {found}, kept {labels}")
    elif event["type"] == "STOP":
        break
