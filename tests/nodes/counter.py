"""Test node: send 1, 2, 3... on `count` at every tick; stop after COUNT values (0: never).

With SPAWN_FILE set, it appends one line per start to that file. With UNTIL_FILE set, it
goes on past COUNT until that file exists (a test ends the stream when its steps are done,
however slow a loaded machine makes them).
"""

import os
from pathlib import Path

from node_sdk import Node

limit = int(os.environ.get("COUNT", "0"))
until = Path(os.environ["UNTIL_FILE"]) if "UNTIL_FILE" in os.environ else None
sent = 0
with Node() as node:
    if "SPAWN_FILE" in os.environ:
        with Path(os.environ["SPAWN_FILE"]).open("a") as spawns:
            spawns.write("start\n")
    for event in node:
        if event["type"] == "INPUT":
            sent += 1
            node.send_output("count", str(sent))
            if limit and sent >= limit and (until is None or until.exists()):
                break
    print(f"counter ended at {sent}", flush=True)  # before its end-of-stream is delivered
print(f"counter sent {sent}", flush=True)
