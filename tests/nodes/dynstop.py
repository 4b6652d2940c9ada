"""Test dynamic node: attaches as `viewer`, says so, prints each STOP it gets, and ends."""

from node_sdk import Node

node = Node("viewer")
print("dynstop: attached", flush=True)
for event in node:
    if event["type"] == "STOP":
        print(f"dynstop: got STOP {event['id']}", flush=True)
print("dynstop: ended", flush=True)
