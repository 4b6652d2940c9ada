"""Test node: forward every value of `in` to `out`; count its starts in SPAWN_FILE.

With SLOW_S it waits that long before it connects (a slow import); with HOLD_FILE, a
restarted generation waits until that file exists before it connects. When CRASH_FILE
exists at an input, it removes it and exits 1 (inside `with Node()`, so the SDK closes as
for any exception). At its end it prints its input's drop count.
"""

import json
import os
import time
from pathlib import Path

from node_sdk import Node

time.sleep(float(os.environ.get("SLOW_S", "0")))
hold = os.environ.get("HOLD_FILE")
if hold and json.loads(os.environ["FLOW_NODE_CONFIG"])["restarts"] > 0:
    for _ in range(600):  # bounded: 60 s
        if os.path.exists(hold):
            break
        time.sleep(0.1)
with Node() as node:
    with Path(os.environ["SPAWN_FILE"]).open("a") as spawns:
        spawns.write(f"start {node.restart_count()}\n")
    crash = Path(os.environ.get("CRASH_FILE", "/nonexistent"))
    for event in node:
        if event["type"] == "INPUT":
            if crash.exists():
                crash.unlink()
                raise SystemExit(1)
            node.send_output("out", event["value"])
        else:
            print(f"event {event['type']} {event['id']}", flush=True)
    stats = node.statistics().inputs["in"]
    print(f"forward received={stats.received} dropped={stats.dropped}", flush=True)
