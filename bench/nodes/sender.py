"""Sends `BENCH_LAT` paced messages, then `BENCH_THR` as fast as it can; seq + stamp in metadata."""

import os
import time

from common import Node, now, payload

size = int(os.environ["BENCH_SIZE"])
paced, burst = int(os.environ["BENCH_LAT"]), int(os.environ["BENCH_THR"])
interval = float(os.environ["BENCH_INTERVAL"])
value = payload(size)
node = Node()
time.sleep(float(os.environ.get("BENCH_SETTLE", "0.3")))  # receivers connected
seq = 0
for _ in range(paced):
    seq += 1
    node.send_output("out", value, {"seq": seq, "t": now(), "p": 0})
    time.sleep(interval)
for _ in range(burst):
    seq += 1
    node.send_output("out", value, {"seq": seq, "t": now(), "p": 1})
if hasattr(node, "close"):
    node.close()
