"""dora's `cpu_affinity`: the node's process runs on the CPUs listed (cpu-affinity-probe)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import flow, flow_run_ok, write_dataflow

PROBE = """
import os
import threading

seen = []
thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
thread.start()
thread.join()
print(f"main {sorted(os.sched_getaffinity(0))} thread {seen[0]}", flush=True)
"""


def test_the_node_runs_on_the_cpus_listed(flow_home: Path, tmp_path: Path) -> None:
    """The process and the threads it starts are pinned to the CPUs of `cpu_affinity`."""
    here = sorted(os.sched_getaffinity(0))
    if len(here) < 2:
        pytest.skip("needs two CPUs to tell pinned from not")
    cpu = here[-1]
    yml = write_dataflow(
        tmp_path,
        f"""
        nodes:
          - id: pinned
            path: probe.py
            cpu_affinity: [{cpu}]
          - id: free
            path: probe.py
          - id: execd
            path: /bin/cat
            args: /proc/self/status
            cpu_affinity: [{cpu}]
        """,
        {"probe.py": PROBE},
    )
    out = flow_run_ok(flow_home, yml)
    assert f"main [{cpu}] thread [{cpu}]" in out, out
    assert f"main {here} thread {here}" in out, out  # the node without the key is not pinned
    # an executable that is not Python reads its mask at once: pinned from its start
    assert re.search(rf"execd .*Cpus_allowed_list:\s+{cpu}$", out, re.MULTILINE), out


def test_cpus_the_machine_lacks_fail_the_node_in_one_line(flow_home: Path, tmp_path: Path) -> None:
    missing = max(os.sched_getaffinity(0)) + 1
    yml = write_dataflow(
        tmp_path,
        f"""
        nodes:
          - id: pinned
            path: probe.py
            cpu_affinity: [{missing}]
        """,
        {"probe.py": PROBE},
    )
    done = flow("run", str(yml), home=flow_home)
    assert done.returncode != 0
    assert f"cpu_affinity: CPU {missing} not available here (available: " in (
        done.stdout + done.stderr
    )


def test_a_bad_cpu_affinity_is_one_line(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: pinned
            path: probe.py
            cpu_affinity: [0, -1]
        """,
        {"probe.py": PROBE},
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"{yml}:5: nodes[0].cpu_affinity: expected a list of CPU numbers (0 to 1023), got -1"
    ]
