"""Sends paced phases (BENCH_PACED), then a burst (BENCH_BURST) of one payload kind.

Each message is built as a user's node builds it (common.Values: a new numpy or pyarrow
array per message), then stamped and sent: latency runs from "the value is ready" to "the
receiver's code has it". With BENCH_META=1 a small metadata dict carries the sequence
number, the stamp and the phase; without it the stamps stay here and are written to
BENCH_OUT, and the bench pairs them with the receiver's by order (nothing is reordered;
the receiver's count proves nothing was lost).

`BENCH_MODE=buffer` (flow, at or above its shared-memory threshold) writes each payload
into a pool segment with `send_output_buffer` instead, so not even one copy is made.
CPU time (user + system, the whole process) is taken around each phase.
"""

import os
import time

from common import SDK, Node, Profile, Values, cpu_s, now, phases, write_result

size = int(os.environ["BENCH_SIZE"])
kind = os.environ.get("BENCH_KIND", "bytes")
with_meta = os.environ.get("BENCH_META", "1") == "1"
in_place = SDK == "flow" and os.environ.get("BENCH_MODE") == "buffer"
paced, burst = phases()
values = Values(kind, size)
node = Node()
time.sleep(float(os.environ.get("BENCH_SETTLE", "0.3")))  # receivers connected
stamps: list[int] = []
keep = stamps.append
send_output = node.send_output


def send_in_place(seq: int, phase: int) -> None:
    metadata = {"seq": seq, "p": phase} if with_meta else None
    if kind == "numpy":
        np = values.np
        with node.send_output_buffer("out", size, metadata, dtype="<u8") as buffer:
            np.frombuffer(buffer, dtype=np.uint64)[:] = seq  # producing it, in place
            stamp = now()
            if metadata is not None:
                metadata["t"] = stamp  # metadata is read when the block ends
    else:
        with node.send_output_buffer("out", size, metadata) as buffer:
            buffer[:] = values.fixed
            stamp = now()
            if metadata is not None:
                metadata["t"] = stamp
    keep(stamp)


def send(seq: int, phase: int) -> None:
    value = values.make(seq)
    stamp = now()
    keep(stamp)
    if with_meta:
        send_output("out", value, {"seq": seq, "t": stamp, "p": phase})
    else:
        send_output("out", value)


one = send_in_place if in_place else send
profile = Profile("sender")
cpu: list[float] = []
seq = 0
for phase, (count, interval) in enumerate(paced):
    started = cpu_s()
    for _ in range(count):
        seq += 1
        one(seq, phase)
        time.sleep(interval)
    cpu.append(cpu_s() - started)
started = cpu_s()
for _ in range(burst):
    seq += 1
    one(seq, len(paced))
cpu.append(cpu_s() - started)
profile.done()
write_result({"sdk": SDK, "stamps": stamps, "cpu_s": cpu})
if hasattr(node, "close"):
    node.close()
