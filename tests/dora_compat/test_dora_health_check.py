"""dora's `health_check_interval` / `health_check_timeout`: a node whose own thread stays
away from `next()` and sends too long is killed (dora's tests/dataflows/health-check-*.yml)."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import flow, flow_run_ok, write_dataflow

RUN_BOUND_S = 120.0  # a safety bound on a whole run, never an assertion about speed

HANG_AFTER_INIT = """
import time
from dora import Node

node = Node()
for event in node:
    if event["type"] == "INPUT":
        break
print("initialised, now hanging", flush=True)
time.sleep(3600)  # never reads again
"""

WAITER = """
import time
from dora import Node

node = Node()
started = time.monotonic()
for event in node:  # no input ever comes: it waits in next(), which is healthy
    if time.monotonic() - started > 5:
        break
"""

BUSY_SENDER = """
import time
import pyarrow as pa
from dora import Node

node = Node()
deadline = time.monotonic() + 4
while time.monotonic() < deadline:  # never in next(), but it sends: healthy too
    node.send_output("value", pa.array([1]))
    time.sleep(0.05)
print("sender done", flush=True)
"""


def test_a_hanging_node_is_killed_and_its_policy_applies(
    flow_home: Path, tmp_path: Path
) -> None:
    """health-check-cycle's shape: killed once the timeout passes, restarted once
    (`on-failure`, `max_restarts: 1`), killed again, then the run fails."""
    yml = write_dataflow(
        tmp_path,
        """
        health_check_interval: 0.2
        nodes:
          - id: hang
            path: hang.py
            restart_policy: on-failure
            max_restarts: 1
            restart_delay: 0.1
            health_check_timeout: 2.0
            inputs: {tick: dora/timer/millis/200}
        """,
        {"hang.py": HANG_AFTER_INIT},
    )
    started = time.monotonic()
    done = flow("run", str(yml), home=flow_home, timeout=RUN_BOUND_S)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert time.monotonic() - started < RUN_BOUND_S
    assert out.count("initialised, now hanging") == 2, out[-3000:]  # two generations
    assert "hang  killed by SIGKILL" in out, out[-3000:]
    assert "(health_check_timeout 2s): killed" in out, out[-3000:]  # the failure's cause


def test_waiting_in_next_or_sending_is_healthy(flow_home: Path, tmp_path: Path) -> None:
    """A node waiting in next() with nothing to read, and one that only sends, both for
    longer than their timeout, are left alone."""
    yml = write_dataflow(
        tmp_path,
        """
        health_check_interval: 0.2
        nodes:
          - id: waiter
            path: waiter.py
            health_check_timeout: 1.5
            inputs: {value: sender/value}
          - id: sender
            path: sender.py
            health_check_timeout: 1.5
            outputs: [value]
        """,
        {"waiter.py": WAITER, "sender.py": BUSY_SENDER},
    )
    out = flow_run_ok(flow_home, yml, timeout=RUN_BOUND_S)
    assert "sender done" in out
    assert "SIGKILL" not in out


def test_a_bad_health_key_is_one_line(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        health_check_interval: 0
        nodes:
          - id: hang
            path: hang.py
            health_check_timeout: soon
        """,
        {"hang.py": HANG_AFTER_INIT},
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"{yml}:2: health_check_interval: must be more than 0 and at most 1d, got 0",
        f"{yml}:6: nodes[0].health_check_timeout: expected a duration like 60s or 2m, got 'soon'",
    ]
