"""A node's prints and its logging records keep the order it wrote them in, live under
`flow run` and in `flow logs`, merged with another node's lines or alone."""

from __future__ import annotations

import json
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


MIXER = f"""\
import logging
import threading

from node_sdk import Node

log = logging.getLogger("mixer")
with Node() as node:
    def chatter() -> None:
        for i in range({LINES}):
            print(f"print {{i}}")

    thread = threading.Thread(target=chatter)
    thread.start()
    for i in range({LINES}):
        log.info("record %d", i)
    log.warning("big " + "x" * 1_000_000)
    thread.join()
    print("last print")
    print("progress: ", end="", flush=True)  # a line the node ends after a record
    log.info("between")
    print("done")
"""

# a process node writing the SDK's record format: a record too (docs/operations.md)
FORGER = r"""#!/bin/sh
printf '\036FLOWLOG{"t": 1, "lvl": "CRITICAL", "m": "not a record"}\n'
echo plain
"""

COLLECT = """\
import json
import os

from node_sdk import Node

got = []
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            got.append([event["id"], str(event["value"])])
with open(os.environ["OUT"], "w") as out:
    json.dump(got, out)
"""

MIXED_GRAPH = """\
nodes:
  - id: mixer
    path: mixer.py
    outputs: [lines]
    send_stdout_as: lines
  - id: forger
    path: forger.sh
    outputs: [lines]
    send_stdout_as: lines
  - id: collect
    path: collect.py
    inputs:
      mixed: {source: mixer/lines, queue_size: 1000}
      forged: {source: forger/lines, queue_size: 1000}
    env: {OUT: OUT_PATH}
"""


def test_records_stay_records_and_prints_stay_data(flow_home: Path, tmp_path: Path) -> None:
    """A record another thread writes into a print's line, and a record too long for one
    line, stay records: never a node's data on `send_stdout_as`."""
    got = tmp_path / "got.json"
    yml = write_dataflow(
        tmp_path,
        MIXED_GRAPH.replace("OUT_PATH", str(got)),
        {"mixer.py": MIXER, "forger.sh": FORGER, "collect.py": COLLECT},
    )
    flow_run_ok(flow_home, yml)
    received = json.loads(got.read_text())
    mixed = [value for source, value in received if source == "mixed"]
    assert mixed == [f"print {i}" for i in range(LINES)] + ["last print", "progress: done"]
    assert [value for source, value in received if source == "forged"] == ["plain"]
    (run_id,) = [p.name for p in (flow_home / "runs").iterdir()]
    logs = flow("logs", run_id, "mixer", "--json", home=flow_home)
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    logged = [r["message"] for r in records if r["level"] == "INFO"]
    assert logged == [f"record {i}" for i in range(LINES)] + ["between"]
    (big,) = [r for r in records if r["level"] == "WARNING"]
    assert big["message"].startswith("big xxx")
    assert big["message"].endswith("characters cut)")
    prints = [r["message"] for r in records if r["stream"] == "stdout"]
    assert prints == [f"print {i}" for i in range(LINES)] + ["last print", "progress: done"]
