"""Test node: send `TAG-1`, `TAG-2`... on `out` at every tick (tells fan-in sources apart)."""

import os

from node_sdk import Node

tag = os.environ["TAG"]
sent = 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            sent += 1
            node.send_output("out", f"{tag}-{sent}")
