"""`dora.build(path)` and `dora.run(path)`: `flow build` and `flow run` from a Python script."""

from __future__ import annotations

import subprocess
import sys


def _flow(*args: str) -> None:
    # the `flow` of this interpreter: the `cli` package is installed with node_sdk
    done = subprocess.run([sys.executable, "-m", "cli", *args], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"flow {' '.join(args)} exited {done.returncode}")


def build(dataflow: str, uv: bool = False) -> None:
    """Run the build lines of the dataflow's nodes (`uv` is accepted; flow uses pip's venv)."""
    del uv  # dora's switch between uv and pip: flow builds in its own environment
    _flow("build", dataflow)


def run(dataflow: str, uv: bool = False) -> None:
    """Run the dataflow to its end in the foreground; RuntimeError if it did not succeed."""
    del uv
    _flow("run", dataflow)
