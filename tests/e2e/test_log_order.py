"""A node's prints and its logging records keep the order it wrote them in, live under
`flow run` and in `flow logs`, merged with another node's lines or alone."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import flow, flow_run_ok, write_dataflow

LINES = 300  # each of a print and a record: enough for the keeper's reads to batch them

CHATTY = f"""\
import logging

from node_sdk import Node

log = logging.getLogger("chatty")
with Node() as node:
    for i in range({LINES}):
        print(f"print {{i}}")
        log.info("record %d", i)
"""

OTHER = f"""\
from node_sdk import Node

with Node() as node:
    for i in range({LINES}):
        print(f"other {{i}}", flush=True)
"""

GRAPH = """\
nodes:
  - id: chatty
    path: chatty.py
  - id: other
    path: other.py
"""

WRITTEN = [f"{kind} {i}" for i in range(LINES) for kind in ("print", "record")]


def chatty_lines(shown: str) -> list[str]:
    return re.findall(r"^chatty +\|.*?((?:print|record) \d+)$", shown, re.MULTILINE)


def test_prints_and_records_keep_the_nodes_order(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, GRAPH, {"chatty.py": CHATTY, "other.py": OTHER})
    assert chatty_lines(flow_run_ok(flow_home, yml)) == WRITTEN
    (run_id,) = [p.name for p in (flow_home / "runs").iterdir()]
    merged = flow("logs", run_id, home=flow_home)
    assert merged.returncode == 0, merged.stderr
    assert chatty_lines(merged.stdout) == WRITTEN
    assert len(re.findall(r"^other +\|.* other \d+$", merged.stdout, re.MULTILINE)) == LINES
    alone = flow("logs", run_id, "chatty", home=flow_home)
    assert chatty_lines(alone.stdout) == WRITTEN
