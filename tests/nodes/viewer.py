"""Test dynamic node: attach as VIEWER_ID, take N inputs, forward them, count timer ticks."""

import os
import sys
import time

from node_sdk import Node, NodeError

wanted = int(os.environ.get("WANT", "5"))
started = time.monotonic()  # before Node(): its timers start inside the span measured
try:
    node = Node(os.environ.get("VIEWER_ID", "viewer"), dataflow=os.environ.get("VIEWER_RUN"))
except NodeError as exc:
    print(f"refused: {exc}", flush=True)
    sys.exit(3)
got = ticks = 0
for event in node:
    if event["type"] != "INPUT":
        continue
    if event["id"] == "tick":
        ticks += 1
        continue
    got += 1
    node.send_output("seen", event["value"])
    if got >= wanted:
        break
elapsed = time.monotonic() - started
print(f"viewer got {got} ticks {ticks} in {elapsed:.2f}s", flush=True)
node.close()
