#!/usr/bin/env python3
"""Print every line the shell ticker sends; ends when the ticker has exited."""

from node_sdk import Node

node = Node()
received = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "line":
        received += 1
        print(f"sink got {event['value']!r}")
    elif event["type"] == "STOP":
        break
print(f"sink done after {received} lines")
