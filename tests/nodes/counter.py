"""Test node: send 1, 2, 3... on `count` at every tick; stop after COUNT values (0: never).

With SPAWN_FILE set, it appends one line per start to that file.
"""

import os
from pathlib import Path

from node_sdk import Node

limit = int(os.environ.get("COUNT", "0"))
sent = 0
with Node() as node:
    if "SPAWN_FILE" in os.environ:
        with Path(os.environ["SPAWN_FILE"]).open("a") as spawns:
            spawns.write("start\n")
    for event in node:
        if event["type"] == "INPUT":
            sent += 1
            node.send_output("count", str(sent))
            if limit and sent >= limit:
                break
print(f"counter sent {sent}", flush=True)
