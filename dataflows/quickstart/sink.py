#!/usr/bin/env python3
"""Print every value that arrives; ends when its input closes."""

from node_sdk import Node

node = Node()
received = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "doubled":
        received += 1
        print(f"sink received {event['value']}")
    elif event["type"] == "STOP":
        break
print(f"sink done after {received} values")
