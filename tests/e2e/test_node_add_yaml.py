"""`flow node add` reads its YAML with the project's loader (issue 10 defect 3): YAML 1.2
scalars (`on` stays a string, `1.10` stays `1.10`) and problems as `FILE:LINE: ...`."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import NODES, flow

GRAPH = f"""nodes:
  - id: listener
    path: {NODES}/listener.py
    inputs:
      tick: flow/timer/secs/1
"""

PROBE = """import os

from node_sdk import Node

with Node() as node:
    print(f"MODE={os.environ['MODE']} VERSION={os.environ['VERSION']}", flush=True)
    for event in node:
        if event["type"] == "STOP":
            break
"""


def test_node_add_keeps_yaml_12_scalars_and_file_lines(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "graph.yml"
    yml.write_text(GRAPH)
    assert flow("start", str(yml), "--detach", "--name", "edit", home=daemon).returncode == 0
    (tmp_path / "probe.py").write_text(PROBE)
    bad = tmp_path / "bad.yml"
    bad.write_text("id: probe\npath: probe.py\nenv:\n  MODE: on\nbogus: 1\n")
    refused = flow("node", "add", "edit", str(bad), home=daemon)
    assert refused.returncode == 2, refused.stderr
    assert f"{bad}:5: bogus: unknown key" in refused.stderr, refused.stderr

    # a script that does not compile: refused before the run is touched, as `flow start`
    (tmp_path / "broken.py").write_text("from node_sdk import Node\nwith Node() as node\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("id: broken\npath: broken.py\ninputs:\n  tick: flow/timer/secs/1\n")
    refused = flow("node", "add", "edit", str(broken), home=daemon)
    assert refused.returncode == 2, refused.stderr
    assert f"{tmp_path / 'broken.py'}:2: syntax error" in refused.stderr, refused.stderr
    assert "broken" not in flow("node", "list", "edit", home=daemon).stdout

    good = tmp_path / "probe.yml"
    good.write_text("id: probe\npath: probe.py\nenv:\n  MODE: on\n  VERSION: 1.10\n")
    added = flow("node", "add", "edit", str(good), home=daemon)
    assert added.returncode == 0, added.stderr
    deadline = time.monotonic() + 20
    logs = ""
    while "MODE=" not in logs and time.monotonic() < deadline:
        time.sleep(0.2)
        logs = flow("logs", "edit", "probe", home=daemon).stdout
    assert "MODE=on VERSION=1.10" in logs, logs
    stopped = flow("stop", "edit", home=daemon)
    assert stopped.returncode == 0
    assert "run edit" in stopped.stdout
    assert "failed" not in stopped.stdout, stopped.stdout  # nothing of the broken node
