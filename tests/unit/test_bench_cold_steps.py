"""`python -m bench.cold_steps` times every step of the round trip, and the trip is real:
the batch read back holds the array sent."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pyarrow as pa
from helpers import REPO

from bench import cold_steps


def test_the_steps_give_the_array_back() -> None:
    array = pa.StructArray.from_arrays([pa.array([7], pa.uint64())], names=["a"])
    state: dict[str, Any] = {}
    for _, step in cold_steps.steps(array):
        step(state)
    assert state["got"].column(0).equals(array)


def test_every_step_is_timed_and_printed() -> None:
    figures = cold_steps.measure(rounds=5, pace_s=0.0)
    assert len(figures) == 7
    assert all(len(times) == 5 and min(times) > 0 for times in figures.values())
    argv = [sys.executable, "-m", "bench.cold_steps", "--rounds", "3"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    rows = lines[lines.index("|---|---|---|") + 1 :]
    assert [row.split(" | ")[0][2:] for row in rows] == list(figures)
