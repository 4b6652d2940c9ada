#!/usr/bin/env python3
"""Send a counter on every timer tick; exit after COUNT values (the graph then winds down)."""

import os

from node_sdk import Node

COUNT = int(os.environ.get("COUNT", "50"))

node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("counter", str(sent), {"origin": "source"})
        if sent >= COUNT:
            break
    elif event["type"] == "STOP":
        break
print(f"source sent {sent} values")
