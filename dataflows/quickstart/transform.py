#!/usr/bin/env python3
"""Double every counter value; ends when its input closes."""

from node_sdk import Node

node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "counter":
        value = int(event["value"])
        node.send_output("doubled", str(value * 2))
    elif event["type"] == "STOP":
        break
