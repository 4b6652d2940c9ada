"""Test node: waits SLOW_S seconds before it connects (a slow import), then runs until STOP.

With CONNECT_FILE set it waits for that file instead: the test lets it connect once it has
seen what it looks for while the node was not connected, however slow a loaded machine is.
"""

import os
import time
from pathlib import Path

from node_sdk import Node

if "CONNECT_FILE" in os.environ:
    connect = Path(os.environ["CONNECT_FILE"])
    deadline = time.monotonic() + 120  # a bound if the test never lets it connect
    while not connect.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
else:
    time.sleep(float(os.environ.get("SLOW_S", "3")))
node = Node()
print("slowstart: connected", flush=True)
for event in node:
    if event["type"] == "STOP":
        break
