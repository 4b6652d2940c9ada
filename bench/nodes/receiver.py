"""Takes every message: its arrival stamp, its sequence number (from metadata when the
sender sends some) and this process's CPU time at each phase's first and last message."""

import os

from common import SDK, Node, Profile, Values, cpu_s, now, phases, touch, write_result

kind = os.environ.get("BENCH_KIND", "bytes")
Values(kind, 0)  # numpy and pyarrow are imported before the first message, as users do
paced, burst = phases()
expected = sum(count for count, _ in paced) + burst
# CPU is read at the first and the last message of each phase (by index: nothing reorders)
edges: set[int] = set()
start = 0
for count in [c for c, _ in paced] + [burst]:
    if count:
        edges.update((start, start + count - 1))
    start += count
stamps: list[int] = []
keep = stamps.append
cpu: dict[int, float] = {}
last_seq = gaps = got = 0
node = Node()
profile = Profile("receiver")
for event in node:
    if event["type"] != "INPUT":
        continue
    touch(kind, event["value"])  # a dora numpy user's to_numpy(): part of having the value
    t = now()
    meta = event["metadata"]
    seq = meta.get("seq") if meta else None
    if seq is not None:
        gaps += seq - last_seq - 1
        last_seq = seq
    keep(t)
    if got in edges:
        cpu[got] = cpu_s()
    got += 1
    if got >= expected:
        break
profile.done()
write_result({"sdk": SDK, "received": got, "expected": expected, "gaps": gaps,
              "stamps": stamps, "cpu_at": cpu})  # fmt: skip
