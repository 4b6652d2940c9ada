"""Takes every message, checks sequence numbers, records latencies and the burst's rate."""

import os

from common import SDK, Node, now, write_result

expected = int(os.environ["BENCH_LAT"]) + int(os.environ["BENCH_THR"])
latencies, last_seq, gaps, got = [], 0, 0, 0
burst_first_sent = burst_last_recv = None
node = Node()
for event in node:
    if event["type"] != "INPUT":
        continue
    t = now()
    meta = event["metadata"]
    seq = meta["seq"]
    gaps += seq - last_seq - 1
    last_seq = seq
    got += 1
    if meta["p"] == 0:
        latencies.append(t - meta["t"])
    else:
        if burst_first_sent is None:
            burst_first_sent = meta["t"]
        burst_last_recv = t
    if got >= expected or seq >= expected:
        break
write_result(
    {
        "sdk": SDK,
        "received": got,
        "expected": expected,
        "gaps": gaps,
        "lat_ns": latencies,
        "burst_ns": (burst_last_recv or 0) - (burst_first_sent or 0),
    }
)
