"""Sends `BENCH_LAT` paced messages, then `BENCH_THR` as fast as it can; seq + stamp in metadata.

flow writes payloads at or above its shared-memory threshold straight into a pool buffer
(`send_output_buffer`), as a producer of frames would, and stamps them once they are
written: the stamp is when the data is ready to go. `BENCH_COPY=1` sends the same bytes
with `send_output` instead (one copy into shared memory, inside the measured time), which
is also what dora's Python API does.
"""

import os
import time

from common import SDK, Node, now, payload

SHM_THRESHOLD = 64 * 1024  # flow's default
size = int(os.environ["BENCH_SIZE"])
paced, burst = int(os.environ["BENCH_LAT"]), int(os.environ["BENCH_THR"])
interval = float(os.environ["BENCH_INTERVAL"])
in_place = SDK == "flow" and size >= SHM_THRESHOLD and os.environ.get("BENCH_COPY") != "1"
value = payload(size)
node = Node()
time.sleep(float(os.environ.get("BENCH_SETTLE", "0.3")))  # receivers connected


def send(seq: int, phase: int) -> None:
    if in_place:
        metadata = {"seq": seq, "p": phase}
        with node.send_output_buffer("out", size, metadata) as buffer:
            buffer[:] = value  # producing the data, into the buffer it is sent from
            metadata["t"] = now()  # metadata is read when the block ends
    else:
        node.send_output("out", value, {"seq": seq, "t": now(), "p": phase})


seq = 0
for _ in range(paced):
    seq += 1
    send(seq, 0)
    time.sleep(interval)
for _ in range(burst):
    seq += 1
    send(seq, 1)
if hasattr(node, "close"):
    node.close()
