"""What the fault tests share: a daemon with a short grace, the crash stream, run lookups,
diagnostics for a failure message, and a real tmpfs for disk faults."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import NODES, flow

from node_sdk import paths

GRACE = "6"  # short: a test that waits for the nodes to stop by themselves waits this long
# a test whose daemon must come back within the grace: a loaded machine's `flow up` (two
# Python starts and a recovery) has taken over 5 s, so only a grace it cannot reach is safe
ADOPT_GRACE = "60"

STREAM = """
nodes:
  - id: counter
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: sink
    path: NODES/seqsink.py
    inputs:
      data: {source: counter/count, queue_size: 1000}  # a starved CPU must not drop
"""


def up(home: Path, grace: str = GRACE) -> None:
    done = flow("up", home=home, env_extra={"FLOW_DAEMON_GRACE": grace})
    assert done.returncode == 0, done.stderr


def start(home: Path, tmp_path: Path, name: str) -> dict[str, Any]:
    yml = tmp_path / f"{name}.yml"
    yml.write_text(STREAM.replace("NODES", str(NODES)))
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr
    return run_info(home, name)


def run_info(home: Path, name: str) -> dict[str, Any]:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [r for r in runs if r["name"] == name][-1]


def diagnostics(home: Path) -> str:
    logs = [paths.daemon_log(home), *sorted(home.glob("runs/*/keeper.log"))]
    return "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs if p.exists())


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def runs(home: Path) -> dict[str, dict]:
    listed = flow("list", "--all", "--json", home=home).stdout.splitlines()
    return {r["name"]: r for r in map(json.loads, listed)}
