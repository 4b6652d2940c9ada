"""`--record` of a process node's `send_stdout_as` output (docs/recording.md): its keeper
gets the recorder's edge with the node's spawn; `flow record` refuses such an output."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow, flow_run_ok, write_dataflow
from mcap.reader import make_reader

LISTENER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"heard {event['value']} seq {event['seq']}", flush=True)
"""

COUNT = 40


def test_run_record_has_every_line_a_process_node_sent(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        f"""
        nodes:
          - id: counting
            path: seq  # a process node: its keeper sends each stdout line
            args: "1 {COUNT}"
            outputs: [lines]
            send_stdout_as: lines
          - id: listener
            path: listener.py
            inputs: {{said: {{source: counting/lines, queue_size: 1000}}}}
        """,
        {"listener.py": LISTENER},
    )
    rec = tmp_path / "lines.mcap"
    out = flow_run_ok(flow_home, yml, "--record", str(rec))
    assert f"heard {COUNT} seq {COUNT}" in out, out
    assert f"recording: {rec}: {COUNT} messages on 1 output over" in out, out
    with rec.open("rb") as file:
        messages = [(channel.topic, message) for _, channel, message in
                    make_reader(file).iter_messages()]  # fmt: skip
    assert {topic for topic, _ in messages} == {"counting/lines"}
    assert [json.loads(m.data)["value"] for _, m in messages] == [
        str(i) for i in range(1, COUNT + 1)
    ]
    assert [m.sequence for _, m in messages] == list(range(1, COUNT + 1))


def test_flow_record_refuses_a_process_nodes_output(daemon: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: talker
            path: sleep
            args: "3600"  # on past the refused record, however slow; its stop ends it
            outputs: [lines]
            send_stdout_as: lines
        """,
        {},
    )
    started = flow("start", str(yml), "--detach", "--name", "quiet", home=daemon)
    assert started.returncode == 0, started.stderr
    refused = flow("record", "quiet", "-o", str(tmp_path / "x.mcap"), "--topics", "talker/lines",
                   home=daemon)  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "record it from the start with --record" in refused.stderr, refused.stderr
    assert flow("stop", "quiet", home=daemon).returncode == 0
