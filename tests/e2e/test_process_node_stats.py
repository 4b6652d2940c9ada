"""A process node's `send_stdout_as` output has statistics: its keeper counts the lines it
sends and reports them, so `flow topic info`, `flow node info`, `flow top` and the
Prometheus endpoint show its rate and counts (they showed `-`)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from helpers import BOUND_S, NODES, TALKER, daemon_down, flow, wait_for, write_dataflow

# the talker's lines go to a node that reads them: one line to one receiver is one sent
TALKER_HEARD = TALKER + f"""  - id: sink
    path: {NODES / "listener.py"}
    inputs:
      lines: talker/lines
"""


def as_json(*args: str, home: Path) -> Any:
    done = flow(*args, "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_process_nodes_lines_are_counted_everywhere_stats_are_shown(
    flow_home: Path, tmp_path: Path
) -> None:
    up = flow("up", "--metrics", "127.0.0.1:0", home=flow_home)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status = flow("status", home=flow_home).stdout
        found = re.search(r"metrics:\s+(http://\S+)", status)
        assert found, status
        yml = write_dataflow(tmp_path, TALKER_HEARD, {})
        started = flow("start", str(yml), "--detach", "--name", "talking", home=flow_home)
        assert started.returncode == 0, started.stdout + started.stderr
        info: dict[str, Any] = {}

        def counted() -> bool:
            nonlocal info
            info = as_json("topic", "info", "talking", "talker/lines", "--sample", "0",
                           home=flow_home)  # fmt: skip
            return bool(info["sent"]) and bool(info["rate"])

        wait_for(counted, "flow topic info shows the talker's lines counted, with a rate")
        assert info["sent"] > 0
        assert info["rate"] > 0  # about 20 a second; never judged for speed here
        assert info["dropped"] == 0
        text = flow("topic", "info", "talking", "talker/lines", "--sample", "0",
                    home=flow_home).stdout  # fmt: skip
        assert re.search(r"rate\s+[\d.]+/s", text), text
        assert re.search(r"sent\s+[1-9]\d*\s+dropped 0", text), text

        node = as_json("node", "info", "talking", "talker", home=flow_home)
        lines = node["stats"]["outputs"]["lines"]
        assert lines["sent"] > 0
        assert lines["bytes"] >= len("line 1") * lines["sent"]  # each `line N` once
        assert node["stats"]["rates"]["out:lines"] >= 0

        top = json.loads(flow("top", "--once", home=flow_home).stdout)
        (run,) = top["runs"]
        (talker,) = [n for n in run["nodes"] if n["id"] == "talker"]
        assert talker["out_rate"] is not None

        page = ""

        def scraped() -> bool:
            nonlocal page
            with urllib.request.urlopen(found.group(1), timeout=BOUND_S) as reply:
                page = reply.read().decode()
            sample = re.search(r'flow_output_messages_total\{[^}]*node="talker"[^}]*'
                               r'output="lines"[^}]*\} (\d+)', page)  # fmt: skip
            return sample is not None and int(sample.group(1)) > 0

        wait_for(scraped, "the metrics endpoint counts the talker's lines")
        assert flow("stop", "talking", home=flow_home).returncode == 0
    finally:
        daemon_down(flow_home)
