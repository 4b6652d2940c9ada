"""Log records a node writes are untrusted: a time no clock can show (`1e300`, NaN) or a
level that is a digit Python cannot read (`²`) ended the run's keeper, and so every node of
the run (`run keeper lost`), and made every `flow logs` of that run fail after."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow, write_dataflow

from daemon.model.logformat import LOG_MARKER, clock, json_line, level_number, parse_line
from daemon.model.logformat import record_from_output as record

HOSTILE = [
    {"t": 1e300, "m": "far future", "lvl": "INFO"},
    {"t": -1e300, "m": "far past", "lvl": "INFO"},
    {"t": "soon", "m": "not a number", "lvl": "INFO"},
    {"t": 1.0, "m": "a digit no int() reads", "lvl": "\u00b2"},
    {"t": 1.0, "m": "a level of many digits", "lvl": "9" * 5000},
]

TALKER = f"""
import json, sys, time
from node_sdk import Node

with Node() as node:
    for entry in {HOSTILE!r}:
        sys.stderr.write({LOG_MARKER!r} + json.dumps(entry) + "\\n")
    sys.stderr.write({LOG_MARKER!r} + '{{"t": NaN, "m": "not a time", "lvl": "INFO"}}\\n')
    sys.stderr.flush()
    time.sleep(0.3)
    print("talker: still here", flush=True)
"""

LISTENER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print("heard", event["value"][0].as_py() if hasattr(event["value"], "__len__")
                  else event["value"], flush=True)
"""


def test_hostile_records_keep_the_run_and_its_logs(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        name: hostile
        nodes:
          - id: talker
            path: talker.py
            send_logs_as: entries
            outputs: [entries]
          - id: listener
            path: listener.py
            inputs:
              logs: talker/entries
        """,
        {"talker.py": TALKER, "listener.py": LISTENER},
    )
    done = flow("run", str(yml), home=flow_home, timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "keeper" not in said, said
    assert "talker: still here" in said, said
    heard = [json.loads(line.split("heard ", 1)[1]) for line in done.stdout.splitlines()
             if " heard " in line]  # fmt: skip
    assert [entry["message"] for entry in heard] == [
        "far future", "far past", "not a number", "a digit no int() reads",
        "a level of many digits", "not a time",
    ], heard  # fmt: skip
    for level in ("", "--level", "--json"):
        args = ["logs", "hostile", *([level] if level else []), *(["ERROR"] if level ==
                "--level" else [])]  # fmt: skip
        logs = flow(*args, home=flow_home)
        assert logs.returncode == 0, (args, logs.stderr)
        assert "Traceback" not in logs.stderr


def test_a_records_time_and_level_are_read_as_far_as_they_can_be() -> None:
    now = 1_700_000_000.0
    for entry in HOSTILE[:3]:
        assert record("stderr", LOG_MARKER + json.dumps(entry), now).time == now
    nan = record("stderr", LOG_MARKER + '{"t": NaN, "m": "x"}', now)
    assert nan.time == now
    kept = record("stderr", LOG_MARKER + '{"t": 1700000001.5, "m": "x"}', now)
    assert kept.time == 1700000001.5  # a sane time is the node's own
    assert level_number(record("stderr", LOG_MARKER + json.dumps(HOSTILE[3]), now)) == 20
    assert level_number(record("stderr", LOG_MARKER + json.dumps(HOSTILE[4]), now)) == 20
    assert level_number(record("stderr", LOG_MARKER + '{"m": "x", "lvl": "25"}', now)) == 25
    # a file written before (or by hand) with such a time reads back without one
    old = parse_line('{"t": 1e300, "s": "log", "m": "x", "lvl": "INFO"}')
    assert old.time == 0.0
    assert clock(old.time) == "--:--:--.---"
    assert json.loads(json_line("n", old))["message"] == "x"
