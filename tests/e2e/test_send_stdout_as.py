"""`send_stdout_as`: a node's stdout lines reach its receivers as string messages."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import flow, write_dataflow

TALKER = """
from node_sdk import Node

with Node() as node:
    for i in range(5):
        print(f"line {i}", flush=True)
"""

LISTENER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"heard {event['value']!r} seq {event['seq']}", flush=True)
        elif event["type"] == "STOP":
            print(f"stop {event['id']}", flush=True)
"""


def test_stdout_lines_become_messages(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: talker
            path: talker.py
            outputs: [stdout]
            send_stdout_as: stdout
          - id: listener
            path: listener.py
            inputs:
              said: talker/stdout
          - id: careful
            path: listener.py
            inputs:
              said: {source: talker/stdout, queue_policy: backpressure, queue_size: 20}
        """,
        {"talker.py": TALKER, "listener.py": LISTENER},
    )
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for node in ("listener", "careful"):  # drop_oldest and backpressure receivers
        for i in range(5):
            heard = rf"{node:<8} \| \S+ heard 'line {i}' seq {i + 1}"  # `node | time text`
            assert re.search(heard, done.stdout), done.stdout
    assert "stop ALL_INPUTS_CLOSED" in done.stdout
