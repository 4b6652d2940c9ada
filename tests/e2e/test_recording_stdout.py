"""Recording a process node's `send_stdout_as` output (docs/recording.md): `--record` gives
its keeper the recorder's edge with the node's spawn; `flow record` wires it to the
keeper's output while the node runs, and unwires it at its end."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import TALKER, flow, flow_run_ok, wait_for, write_dataflow
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


def test_flow_record_of_a_running_process_node_has_the_lines_it_prints(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, TALKER, {})
    started = flow("start", str(yml), "--detach", "--name", "talking", home=daemon)
    assert started.returncode == 0, started.stderr
    rec = tmp_path / "talk.mcap"
    recorded = flow("record", "talking", "-o", str(rec), "--topics", "talker/lines",
                    "--duration", "2s", home=daemon)  # fmt: skip
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    said = recorded.stdout + recorded.stderr
    assert "not recorded" not in said, said  # the lines before it are not missed ones
    with rec.open("rb") as file:
        messages = [(channel.topic, message.sequence, json.loads(message.data)) for _, channel,
                    message in make_reader(file).iter_messages()]  # fmt: skip
    # a line every 50 ms for 2 s, from the first the node printed once the edge was there,
    # numbered on the recorder's edge from 1
    assert len(messages) >= 10, said
    assert {topic for topic, _, _ in messages} == {"talker/lines"}
    assert [seq for _, seq, _ in messages] == list(range(1, len(messages) + 1))
    numbers = [int(record["value"].split()[1]) for _, _, record in messages]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert f"recorded {len(messages)} messages" in recorded.stdout, said
    # unwired at the record's end: a second record gets what is printed after it started
    again = tmp_path / "again.mcap"
    recorded = flow("record", "talking", "-o", str(again), "--topics", "talker/lines",
                    "--duration", "1s", home=daemon)  # fmt: skip
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    with again.open("rb") as file:
        later = [json.loads(m.data) for _, _, m in make_reader(file).iter_messages()]
    assert later, recorded.stdout
    assert int(later[0]["value"].split()[1]) > numbers[-1], later[:1]
    assert flow("stop", "talking", home=daemon).returncode == 0


def test_flow_restart_records_the_new_run_when_asked(daemon: Path, tmp_path: Path) -> None:
    """A recording ends with its run; `flow restart --record PATH` records the new one, and
    a path it would not write refuses the restart before anything stops."""
    yml = write_dataflow(tmp_path, TALKER, {})
    first, second = tmp_path / "first.mcap", tmp_path / "second.mcap"
    started = flow("start", str(yml), "--detach", "--name", "again", "--record", str(first),
                   home=daemon)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    refused = flow("restart", "again", "--record", str(yml), home=daemon)  # it exists
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the file exists (a recording never overwrites one)" in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    done = flow("restart", "again", "--record", str(second), "--grace", "2s", home=daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"recording into {second})" in done.stdout + done.stderr, done.stdout + done.stderr
    wait_for(lambda: second.exists() and second.stat().st_size > 0, "the new recording is written")
    assert flow("stop", "again", home=daemon).returncode == 0
    for rec in (first, second):  # each run in its own file, from its first line
        with rec.open("rb") as file:
            values = [json.loads(m.data)["value"] for _, _, m in make_reader(file).iter_messages()]
        assert values[:2] == ["line 1", "line 2"], (rec, values[:3])
