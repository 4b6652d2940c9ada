"""Test node: ignores STOP and SIGTERM; only SIGKILL ends it."""

import signal
import time

from node_sdk import Node

signal.signal(signal.SIGTERM, signal.SIG_IGN)
node = Node()
print("stubborn: running", flush=True)
for event in node:
    if event["type"] == "STOP":
        print("stubborn: ignoring STOP", flush=True)
        break
while True:
    time.sleep(0.2)
