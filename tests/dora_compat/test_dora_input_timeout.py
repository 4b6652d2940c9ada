"""dora's `input_timeout`: an input silent too long is closed until its source speaks again
(dora's tests/dataflows/input-timeout-delivery.yml and input-recovered-delivery.yml)."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import flow, flow_run_ok, write_dataflow

BURST = """
import os
import time

import pyarrow as pa
from dora import Node

node = Node()
gap = float(os.environ["GAP_S"])
node.send_output("value", pa.array([1]))
time.sleep(gap)  # silent: longer than the observer's input_timeout
node.send_output("value", pa.array([2]))
time.sleep(0.5)
"""

OBSERVER = """
from dora import Node

node = Node()
for event in node:
    kind = event["type"]
    if kind == "INPUT":
        print(f"event INPUT {event['id']} {event['value'].to_pylist()}", flush=True)
    elif kind in ("INPUT_CLOSED", "INPUT_RECOVERED"):
        print(f"event {kind} {event['id']}", flush=True)
    elif kind == "STOP":
        print(f"event STOP {event['id']}", flush=True)
"""

DATAFLOW = """
nodes:
  - id: burst
    path: burst.py
    outputs: [value]
    env: {{GAP_S: "{gap}"}}
  - id: observer
    path: observer.py
    inputs:
      value:
        source: burst/value
        input_timeout: 0.5
      other: burst/value
"""


def events(output: str) -> list[str]:
    return re.findall(r"^observer\s+\| \S+ event (.*)$", output, re.M)


def test_a_silent_input_closes_then_recovers(flow_home: Path, tmp_path: Path) -> None:
    """One message arms the timed input; 2 s of silence close it (INPUT_CLOSED) while the
    node keeps running; the next message comes after INPUT_RECOVERED. The untimed input of
    the same source sees neither; the end of the source closes only what is still open."""
    yml = write_dataflow(
        tmp_path, DATAFLOW.format(gap=2), {"burst.py": BURST, "observer.py": OBSERVER}
    )
    got = [e for e in events(flow_run_ok(flow_home, yml)) if "other" not in e]
    assert got == [
        "INPUT value [1]",
        "INPUT_CLOSED value",
        "INPUT_RECOVERED value",
        "INPUT value [2]",
        "INPUT_CLOSED value",  # the source ended: the input closes for good
        "STOP ALL_INPUTS_CLOSED",
    ], got


def test_no_timeout_within_the_bound(flow_home: Path, tmp_path: Path) -> None:
    """A gap shorter than `input_timeout` closes nothing."""
    # 0.1 s against 5 s, not 0.5: a loaded machine can hold either process for 0.4 s
    dataflow = DATAFLOW.format(gap=0.1).replace("input_timeout: 0.5", "input_timeout: 5")
    yml = write_dataflow(tmp_path, dataflow, {"burst.py": BURST, "observer.py": OBSERVER})
    got = [e for e in events(flow_run_ok(flow_home, yml)) if "other" not in e]
    assert got == [
        "INPUT value [1]", "INPUT value [2]", "INPUT_CLOSED value", "STOP ALL_INPUTS_CLOSED",
    ], got  # fmt: skip


def test_a_bad_input_timeout_is_one_line(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        DATAFLOW.format(gap=1).replace("input_timeout: 0.5", "input_timeout: soon"),
        {"burst.py": BURST, "observer.py": OBSERVER},
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"{yml}:12: nodes[1].inputs.value.input_timeout: expected a duration like 60s or 2m, "
        "got 'soon'"
    ]
