"""`python -m bench.cold_steps`: each step of a one-row struct's arrow round trip, timed
alone after a 2 ms sleep (as a paced message meets it) and in a loop (docs/performance.md,
"Where a paced arrow message's time goes")."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.ipc  # pa.ipc is a submodule

PACE_S = 0.002
WARM = 50  # rounds left out of the figures: imports and first-call caches


def steps(array: Any) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """The round trip's steps in order; each reads what the ones before it left in `state`."""
    schema = pa.schema([pa.field("v", array.type)])
    message = schema.serialize()
    last_type = array.type

    def equals(state: dict[str, Any]) -> None:
        state["same"] = array.type.equals(last_type)

    def from_arrays(state: dict[str, Any]) -> None:
        state["batch"] = pa.RecordBatch.from_arrays([array], schema=schema)

    def total_size(state: dict[str, Any]) -> None:
        state["size"] = array.get_total_buffer_size()

    def serialize(state: dict[str, Any]) -> None:
        state["serialized"] = state["batch"].serialize()

    def join(state: dict[str, Any]) -> None:
        state["data"] = b"".join((message, state["serialized"], b"\xff" * 4 + b"\0" * 4))

    def read_message(state: dict[str, Any]) -> None:
        state["message"] = pa.ipc.read_message(pa.py_buffer(state["data"]).slice(message.size))

    def read_batch(state: dict[str, Any]) -> None:
        state["got"] = pa.ipc.read_record_batch(state["message"], schema)

    return [("`array.type.equals(last)`", equals), ("`RecordBatch.from_arrays`", from_arrays),
            ("`get_total_buffer_size`", total_size), ("`batch.serialize()`", serialize),
            ("join with the schema message", join), ("`ipc.read_message`", read_message),
            ("`ipc.read_record_batch`", read_batch)]  # fmt: skip


def measure(rounds: int, pace_s: float) -> dict[str, list[float]]:
    """Microseconds per step, per round; a sleep of `pace_s` before each round (0: none)."""
    array = pa.StructArray.from_arrays(
        [pa.array([1], pa.uint64()), pa.array([b"x" * 8], pa.binary())], names=["a", "b"]
    )
    timed = steps(array)
    figures: dict[str, list[float]] = {name: [] for name, _ in timed}
    state: dict[str, Any] = {}
    for round_ in range(WARM + rounds):
        if pace_s:
            time.sleep(pace_s)
        for name, step in timed:
            began = time.perf_counter_ns()
            step(state)
            took = (time.perf_counter_ns() - began) / 1000
            if round_ >= WARM:
                figures[name].append(took)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_steps", description=__doc__)
    parser.add_argument("--rounds", type=int, default=550)
    args = parser.parse_args()
    cold = measure(args.rounds, PACE_S)
    hot = measure(args.rounds * 4, 0.0)
    print(f"pyarrow {pa.__version__}, pool {pa.default_memory_pool().backend_name}")
    print("| step | cold, us | in a loop, us |\n|---|---|---|")
    for name in cold:
        print(f"| {name} | {statistics.median(cold[name]):.1f} | "
              f"{statistics.median(hot[name]):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
