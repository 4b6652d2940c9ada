"""Test node: print every event it gets, whatever the input id (for graph edits)."""

from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"input {event['id']} {event['value']} seq {event.seq}", flush=True)
        else:
            print(f"event {event['type']} {event['id']}", flush=True)
