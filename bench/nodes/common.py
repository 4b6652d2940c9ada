"""What the bench's node scripts share: the SDK to use (flow's or dora's), the payload kinds
users send, the phases of a measured run, and each process's own CPU time."""

from __future__ import annotations

import json
import os
import time
from typing import Any

if os.environ.get("BENCH_SDK") == "dora":
    from dora import Node
else:
    from node_sdk import Node  # noqa: F401  (re-exported for the node scripts)

SDK = os.environ.get("BENCH_SDK", "flow")
now = time.time_ns

# The payload kinds (BENCH_KIND): what a user's node sends.
#   bytes   one bytes object, sent again and again
#   numpy   a new np.uint64 array per message (size // 8 elements, as dora's benchmark)
#   arrow   a new pyarrow uint8 array per message
#   struct  a new pyarrow struct array per message (two uint32 fields, size // 8 rows)
KINDS = ("bytes", "numpy", "arrow", "struct")


def phases() -> tuple[list[tuple[int, float]], int]:
    """The paced phases as (messages, interval s), then the burst's message count."""
    paced = []
    for spec in os.environ["BENCH_PACED"].split(","):  # "count@seconds,count@seconds"
        count, _, interval = spec.partition("@")
        paced.append((int(count), float(interval)))
    return paced, int(os.environ["BENCH_BURST"])


def cpu_s() -> float:
    """This process's CPU time so far, user + system, every thread (its own accounting;
    `os.times` counts in 10 ms ticks, this clock in nanoseconds)."""
    return time.process_time()


class Values:
    """Builds the value of one message of a kind, as a user's node would."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind = kind
        self.size = size
        self.fixed = bytes(size)
        if kind != "bytes":
            import numpy as np

            self.np = np
        if kind in ("arrow", "struct") or (kind == "numpy" and SDK == "dora"):
            import pyarrow as pa

            self.pa = pa

    def make(self, seq: int) -> Any:
        kind = self.kind
        if kind == "bytes":
            return self.fixed
        np = self.np
        if kind == "numpy":
            array = np.full(max(self.size // 8, 1), seq, dtype=np.uint64)
            if SDK == "dora":  # dora's Python API takes pyarrow arrays: what its users do
                return self.pa.array(array)
            return array
        if kind == "arrow":
            return self.pa.array(np.full(self.size, seq & 0xFF, dtype=np.uint8))
        rows = max(self.size // 8, 1)
        pa = self.pa
        fields = [pa.array(np.full(rows, seq, dtype=np.uint32)),
                  pa.array(np.full(rows, 1, dtype=np.uint32))]  # fmt: skip
        return pa.StructArray.from_arrays(fields, names=["x", "y"])

    def frames(self, value: Any) -> list[Any]:
        """The bytes a raw pyzmq sender sends for `value` (its buffers, no serialization)."""
        if self.kind in ("bytes", "numpy"):
            return [value]
        return [buf for buf in value.buffers() if buf is not None]

    def rebuild(self, frames: list[Any]) -> Any:
        """What a raw pyzmq receiver makes of `frames` to use them: the value its sender
        made (numpy from its buffer, pyarrow from its buffers and the type both sides
        know), as flow's and dora's receivers hand their nodes a value, not bytes."""
        kind = self.kind
        if kind == "bytes":
            return frames[-1]
        if kind == "numpy":
            return self.np.frombuffer(frames[-1], dtype=self.np.uint64)
        pa = self.pa
        if kind == "arrow":
            data = pa.py_buffer(frames[-1])
            return pa.Array.from_buffers(pa.uint8(), data.size, [None, data])
        x, y = (pa.py_buffer(frame) for frame in frames[-2:])
        rows = x.size // 4
        fields = [pa.Array.from_buffers(pa.uint32(), rows, [None, x]),
                  pa.Array.from_buffers(pa.uint32(), rows, [None, y])]  # fmt: skip
        return pa.StructArray.from_arrays(fields, names=["x", "y"])


def touch(kind: str, value: Any) -> Any:
    """What a receiver does with a value: numpy users turn it back into numpy."""
    if kind == "numpy" and SDK == "dora":
        return value.to_numpy()
    return value


class Profile:
    """cProfile over a node's loop when BENCH_PROFILE names a folder (written as
    `<folder>/<role>.prof`): `python -m bench --profile DIR` for one kind and size."""

    def __init__(self, role: str) -> None:
        folder = os.environ.get("BENCH_PROFILE")
        self.path = os.path.join(folder, f"{role}.prof") if folder else None
        self.profile: Any = None
        if self.path:
            import cProfile

            self.profile = cProfile.Profile()
            self.profile.enable()

    def done(self) -> None:
        if self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(self.path)


def write_result(result: dict[str, Any]) -> None:
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


def payload(size: int) -> Any:
    """The value of the start and chain runs: bytes for flow, a pyarrow uint8 array for dora."""
    raw = bytes(size)
    if SDK == "dora":
        import numpy as np
        import pyarrow as pa

        return pa.array(np.frombuffer(raw, dtype=np.uint8))
    return raw
