"""Test node: waits SLOW_S seconds before it connects (a slow import), then runs until STOP."""

import os
import time

from node_sdk import Node

time.sleep(float(os.environ.get("SLOW_S", "3")))
node = Node()
print("slowstart: connected", flush=True)
for event in node:
    if event["type"] == "STOP":
        break
