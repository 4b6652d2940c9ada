"""A node that is not running any more shows no figure as current: no rate, latency, queue
or pid in `flow node list`, `flow node info` and `flow top`; only its totals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from helpers import NODES, flow, wait_for, write_dataflow

# `holder` takes the counter's messages until the file `die` appears, then its process
# ends at once (os._exit: no end-of-stream, no last report), while `counter` goes on
GRAPH = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: holder
    path: holder.py
    inputs:
      x: counter/count
"""
HOLDER = """
import os
from pathlib import Path

from node_sdk import Node

die = Path(__file__).with_name("die")
for event in Node():
    if event["type"] == "INPUT" and die.exists():
        os._exit(1)
"""


def _json(*args: str, home: Path) -> Any:
    done = flow(*args, "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _holder_of(top: dict[str, Any]) -> dict[str, Any]:
    (run,) = top["runs"]
    return next(n for n in run["nodes"] if n["id"] == "holder")


def test_a_failed_receiver_shows_its_totals_but_no_rate_latency_or_pid(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, GRAPH, {"holder.py": HOLDER})
    started = flow("start", str(yml), "--detach", "--name", "held", home=daemon)
    assert started.returncode == 0, started.stdout + started.stderr
    node: dict[str, Any] = {}

    def measured() -> bool:  # two reports gave a rate, and the last one a latency
        nonlocal node
        node = _json("node", "info", "held", "holder", home=daemon)
        stats = node["stats"] or {}
        return bool((stats.get("rates") or {}).get("x")) and "latency_p50_us" in stats[
            "inputs"
        ].get("x", {})

    wait_for(measured, "holder reports a rate and a latency")
    assert node["pid"] is not None
    (tmp_path / "die").touch()
    wait_for(lambda: _json("node", "info", "held", "holder", home=daemon)["status"] == "failed",
             "holder failed")  # fmt: skip

    node = _json("node", "info", "held", "holder", home=daemon)
    assert node["pid"] is None, node
    x = node["stats"]["inputs"]["x"]
    assert node["stats"]["rates"] == {}, node
    assert x["received"] > 0, node  # the totals stay, as totals
    assert not {"queued", "latency_p50_us", "latency_p99_us"} & set(x), node
    text = flow("node", "info", "held", "holder", home=daemon).stdout
    assert "pid:" not in text, text
    row = next(line for line in text.splitlines() if line.strip().startswith("in  x"))
    assert row.split()[-4:] == ["-", "-", "-", "-"], text  # QUEUED, RATE/S, P50, P99
    # MESSAGES: the messages handed to its code, the ones BYTES counts
    assert row.split()[3:5] == [str(x["delivered"]), str(x["bytes"])], text

    listed = flow("node", "list", "held", home=daemon).stdout
    holder = next(line for line in listed.splitlines() if line.startswith("holder"))
    assert re.search(r"holder\s+failed\s+1\s+-\s+0\s+x: - queued, \d+ dropped, -/s$", holder), (
        listed
    )

    top = _holder_of(json.loads(flow("top", "--once", home=daemon).stdout))
    assert top["status"] == "failed", top
    assert (top["pid"], top["in_rate"], top["out_rate"]) == (None, None, None), top
    assert (top["latency_p50_us"], top["latency_p99_us"], top["queued"]) == (None,) * 3, top
    piped = flow("top", home=daemon).stdout.splitlines()
    cells = next(line.split() for line in piped if line.split()[1:2] == ["holder"])
    # STATUS PID CPU% RSS IN/S OUT/S QUEUED DROPPED P50 P99
    assert [*cells[2:9], *cells[10:]] == ["failed", *["-"] * 8], piped
    # the counter still runs and is still measured
    counter = next(line.split() for line in piped if line.split()[1:2] == ["counter"])
    assert counter[2:4] != ["running", "-"], piped
    assert counter[2] == "running", piped
    assert flow("stop", "held", home=daemon).returncode == 0
