"""Crashes (exit 1) until it has started BENCH_STARTS times, stamping each start and exit
into BENCH_OUT: the restart latency of a crashed node (restart_delay 0)."""

import os
import time

started = time.time()  # first: before any import of the SDK's
with open(os.environ["BENCH_OUT"], "a") as out:
    out.write(f"start {started}\n")
with open(os.environ["BENCH_OUT"]) as done:
    starts = sum(1 for line in done if line.startswith("start"))
if starts < int(os.environ["BENCH_STARTS"]):
    with open(os.environ["BENCH_OUT"], "a") as out:
        out.write(f"exit {time.time()}\n")
    os._exit(1)
