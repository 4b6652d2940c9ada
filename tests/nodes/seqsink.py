"""Test node: print every value with its sequence number; count gaps and repeats.

A sequence that starts again at 1 is a new generation of the sender (a restart).
"""

from node_sdk import Node

last: dict[str, int] = {}
gaps = repeats = received = 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            received += 1
            seq = event["seq"]
            previous = last.get(event["id"], 0)
            if seq == 1 and previous:
                pass  # a new generation of the sender numbers from 1 again
            elif seq <= previous:
                repeats += 1
            elif seq != previous + 1:
                gaps += seq - previous - 1
            last[event["id"]] = seq
            print(f"got {event['id']} {event['value']} seq {seq}", flush=True)
        elif event["type"] == "INPUT_CLOSED":
            print(f"closed {event['id']}", flush=True)
        elif event["type"] == "STOP":
            print(f"stop {event['id']}", flush=True)
    refused = sum(s.refused for s in node.statistics().inputs.values())
print(f"summary received={received} gaps={gaps} repeats={repeats} refused={refused}", flush=True)
