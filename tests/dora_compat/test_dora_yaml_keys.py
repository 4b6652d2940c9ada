"""dora's YAML keys through the `flow` CLI: each one implemented, or refused in one line."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from helpers import NODES, flow, write_dataflow

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed

TALKER = """
import logging

from node_sdk import Node

with Node() as node:
    for i in range(3):
        logging.debug("debug %d", i)
        logging.info("info %d", i)
        print(f"stdout {i}", flush=True)
    logging.error("done")
"""

LISTENER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            value = event["value"]
            if hasattr(value, "to_pylist"):  # a log entry: one string in an arrow array
                [value] = value.to_pylist()
            print(f"heard {event['id']} {value}", flush=True)
"""


def heard(output: str, node: str) -> list[str]:
    """The values `node` (a LISTENER) printed, in order, from `flow run`'s output."""
    return re.findall(rf"^{re.escape(node)}\s+\| \S+ heard \S+ (.*)$", output, re.M)


def test_send_logs_as_sends_log_records_at_min_log_level(flow_home: Path, tmp_path: Path) -> None:
    """python-logging's shape: the talker's records at info and above reach the listener as
    JSON entries; its debug records are neither sent nor logged, its stdout is not sent."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: talker
            path: talker.py
            min_log_level: info
            send_logs_as: log_entries
            outputs: [log_entries]
          - id: listener
            path: listener.py
            inputs:
              logs: talker/log_entries
        """,
        {"talker.py": TALKER, "listener.py": LISTENER},
    )
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    entries = [json.loads(value) for value in heard(done.stdout, "listener")]
    assert [(e["level"], e["message"]) for e in entries] == [
        ("info", "info 0"), ("info", "info 1"), ("info", "info 2"), ("error", "done"),
    ]  # fmt: skip
    assert {e["node_id"] for e in entries} == {"talker"}
    talker = "\n".join(line for line in done.stdout.splitlines() if line.startswith("talker"))
    assert "INFO root: info 1" in talker  # its log keeps its records
    assert "stdout 1" in talker  # and its stdout
    assert "debug" not in talker  # min_log_level: below it, nothing is written


def test_both_stdout_and_logs_as_is_one_line(tmp_path: Path, flow_home: Path) -> None:
    yml = tmp_path / "df.yml"
    yml.write_text(
        f"nodes:\n  - id: a\n    path: {NODES}/listener.py\n    outputs: [o]\n"
        "    send_stdout_as: o\n    send_logs_as: o\n"
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert f"{yml}:6: nodes[0].send_logs_as: give send_stdout_as or send_logs_as, not both" in (
        done.stderr
    )


def test_module_sub_graph_expands_and_runs(flow_home: Path, tmp_path: Path) -> None:
    """module-dataflow's shape: a module with an input, two inner nodes and an output."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "double_module.yml").write_text(
        f"""module:
  name: double
  inputs: [raw]
  outputs: [twice]
nodes:
  - id: first
    path: {NODES}/forward.py
    env: {{SPAWN_FILE: {tmp_path / "s1"}}}
    inputs:
      in: _mod/raw
    outputs: [out]
  - id: second
    path: ../relay.py
    inputs:
      in: first/out
    outputs: [twice]
"""
    )
    yml = write_dataflow(
        tmp_path,
        f"""
        nodes:
          - id: source
            path: {NODES}/counter.py
            env: {{COUNT: 3}}
            inputs:
              tick: flow/timer/millis/50
            outputs: [count]
          - id: pipeline
            module: modules/double_module.yml
            inputs:
              raw: source/count
          - id: listener
            path: listener.py
            inputs:
              got: pipeline/twice
        """,
        {
            "listener.py": LISTENER,
            "relay.py": """
                from node_sdk import Node

                with Node() as node:
                    for event in node:
                        if event["type"] == "INPUT":
                            node.send_output("twice", event["value"] * 2)
                """,
        },
    )
    checked = flow("check", str(yml), home=flow_home)
    assert checked.returncode == 0, checked.stderr
    assert "4 nodes, 3 connections" in checked.stdout
    done = flow("run", str(yml), home=flow_home, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert heard(done.stdout, "listener") == ["11", "22", "33"]
    assert "pipeline.first" in done.stdout  # inner ids carry the module's id


def test_module_missing_input_is_one_line(tmp_path: Path, flow_home: Path) -> None:
    (tmp_path / "m.yml").write_text(
        f"module: {{name: m, inputs: [raw]}}\nnodes:\n  - id: a\n    path: {NODES}/forward.py\n"
        "    inputs: {in: _mod/raw}\n"
    )
    yml = tmp_path / "df.yml"
    yml.write_text("nodes:\n  - id: p\n    module: m.yml\n")
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert f"{yml}:2: nodes[0].inputs: module m.yml needs input 'raw'" in done.stderr


def test_types_checked_where_both_ends_declare_one(tmp_path: Path, flow_home: Path) -> None:
    """dora's type-mismatch fixture: refused by flow check, naming both ends."""
    node = f"{NODES}/listener.py"
    text = f"""nodes:
  - id: sensor
    path: {node}
    outputs: [reading, small]
    output_types: {{reading: std/core/v1/Float64, small: std/core/v1/UInt8}}
  - id: sink
    path: {node}
    inputs:
      reading: sensor/reading
      wide: sensor/small
    input_types: {{reading: std/core/v1/String, wide: std/core/v1/UInt64}}
"""
    yml = tmp_path / "df.yml"
    yml.write_text(text)
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"{yml}:9: nodes[1].inputs.reading: type mismatch: sensor/reading sends "
        "std/core/v1/Float64 (output_types) but sink/reading takes std/core/v1/String "
        "(input_types)"
    ]  # UInt8 -> UInt64 widens: no line for `wide`
    yml.write_text(text.replace("std/core/v1/String", "std/core/v1/Bytes"))
    assert flow("check", str(yml), home=flow_home).returncode == 0  # anything fits Bytes
    yml.write_text(text.replace("wide: std", "nope: std"))
    typo = flow("check", str(yml), home=flow_home)
    assert f"{yml}:11: nodes[1].input_types.nope: 'nope' is not one of the node's inputs" in (
        typo.stderr
    )


def test_max_restarts_zero_means_unlimited(daemon: Path, tmp_path: Path) -> None:
    """`dora expand` writes `max_restarts: 0`: past the default limit of 5, it restarts on."""
    spawns = tmp_path / "spawns"
    yml = tmp_path / "df.yml"
    yml.write_text(
        f"""nodes:
  - id: crasher
    path: {NODES}/crasher.py
    env: {{SPAWN_FILE: {spawns}}}
    restart_policy: on-failure
    max_restarts: 0
    restart_delay: 0.01
    max_restart_delay: 0.01
"""
    )
    started = flow("start", str(yml), "--detach", "--name", "loop", home=daemon)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + BOUND_S
    while len(spawns.read_text().splitlines() if spawns.exists() else []) < 8:
        status = flow("list", "--json", home=daemon).stdout
        assert '"failed"' not in status, status  # it gave up: a limit was applied
        assert time.monotonic() < deadline, f"fewer than 8 starts in {BOUND_S:g} s"
        time.sleep(0.3)
    assert flow("stop", "loop", home=daemon).returncode == 0


def test_dora_expand_output_and_debug_are_accepted(tmp_path: Path, flow_home: Path) -> None:
    yml = tmp_path / "df.yml"
    yml.write_text(
        f"deploy: null\ndebug:\n  enable_debug_inspection: true\nnodes:\n"
        f"  - id: a\n    path: {NODES}/listener.py\n    max_restarts: 0\n    deploy: null\n"
    )
    assert flow("check", str(yml), home=flow_home).returncode == 0
    yml.write_text(f"debug: {{inspect: yes}}\nnodes:\n  - id: a\n    path: {NODES}/listener.py\n")
    bad = flow("check", str(yml), home=flow_home)
    assert bad.returncode == 2
    assert "debug.inspect: unknown key (allowed: enable_debug_inspection" in bad.stderr


def test_refused_keys_say_not_supported_by_flow_and_why(tmp_path: Path, flow_home: Path) -> None:
    """The keys flow refuses say so with the reason; the health and timeout keys are read
    (test_dora_health_check.py, test_dora_input_timeout.py)."""
    yml = tmp_path / "df.yml"
    yml.write_text(
        f"""health_check_interval: 0.1
nodes:
  - id: a
    path: {NODES}/listener.py
    health_check_timeout: 2.0
    max_rotated_files: 2
    startup_timeout: 5
    inputs:
      late: {{source: b/o, input_timeout: 0.5}}
  - id: b
    path: {NODES}/listener.py
    outputs: [o]
"""
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    lines = done.stderr.splitlines()[1:]
    assert [line.split(": ", 2)[1] for line in lines] == [
        "nodes[0].max_rotated_files", "nodes[0].startup_timeout",
    ]  # fmt: skip
    assert all("not supported by flow: " in line for line in lines), lines
    assert "flow's key is `connect_timeout`" in lines[1]


def test_check_reads_a_node_add_file(tmp_path: Path, flow_home: Path) -> None:
    """dora's filter-node.yml: one node mapping, its sources nodes of a run to come."""
    node = tmp_path / "filter-node.yml"
    node.write_text(f"id: filter\npath: {NODES}/forward.py\ninputs: {{in: sender/value}}\n"
                    "outputs:\n  - out\n")  # fmt: skip
    done = flow("check", str(node), home=flow_home)
    assert done.returncode == 0, done.stderr
    assert "ok: node filter, a file for `flow node add`" in done.stdout
    node.write_text("id: filter\npath: nowhere.py\n")
    missing = flow("check", str(node), home=flow_home)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[1:] == [
        f"{node}:2: path: no such file: {tmp_path}/nowhere.py"
    ]


def test_max_log_size_rotates_the_node_log(flow_home: Path, tmp_path: Path) -> None:
    """python-logging's `max_log_size: "1KB"`: this node's log rotates at its own size."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: chatter
            path: chatter.py
            max_log_size: "1KB"
          - id: quiet
            path: chatter.py
        """,
        {"chatter.py": "for i in range(100):\n    print(f'line {i:04d} ' + 'x' * 40)\n"},
    )
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    logs = {p.name: p.stat().st_size for p in flow_home.rglob("*.log*")}
    assert logs["chatter.log"] <= 1000
    assert "chatter.log.1" in logs  # rotated, 3 older files kept
    assert "quiet.log.1" not in logs  # the setting (16 MiB) for the others
    yml.write_text(yml.read_text().replace('"1KB"', '"1 parsec"'))
    bad = flow("check", str(yml), home=flow_home)
    assert "nodes[0].max_log_size: expected a size like 100MB or 512KiB, got a string" in (
        bad.stderr
    )


def test_dora_logs_input_gets_every_node_s_records(flow_home: Path, tmp_path: Path) -> None:
    """log-aggregator's shape: `dora/logs` reads every node's records, at its own level;
    `dora/logs/error/NODE` one node's."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: talker
            path: talker.py
          - id: terse
            path: talker.py
            min_log_level: error
          - id: viewer
            path: listener.py
            inputs:
              logs: dora/logs
          - id: alerts
            path: listener.py
            inputs:
              bad: dora/logs/error/terse
        """,
        {"talker.py": TALKER, "listener.py": LISTENER},
    )
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = sorted((e["node_id"], e["level"], e["message"])
                  for e in map(json.loads, heard(done.stdout, "viewer")))  # fmt: skip
    assert seen == [
        ("talker", "error", "done"), ("talker", "info", "info 0"), ("talker", "info", "info 1"),
        ("talker", "info", "info 2"), ("terse", "error", "done"),
    ]  # fmt: skip
    assert [json.loads(v)["message"] for v in heard(done.stdout, "alerts")] == ["done"]
    yml.write_text(yml.read_text().replace("error/terse", "loud/terse"))
    bad = flow("check", str(yml), home=flow_home)
    assert "nodes[3].inputs.bad: expected dora/logs, dora/logs/LEVEL or" in bad.stderr


def test_what_dora_expand_writes_is_accepted(tmp_path: Path, flow_home: Path) -> None:
    """`dora expand`'s output: every optional field written out, nulls included, and timers
    in the coarsest exact unit (`nanos` for 3 Hz)."""
    yml = tmp_path / "expanded.yml"
    yml.write_text(
        f"""nodes:
- id: ticker
  name: null
  description: null
  path: {NODES}/counter.py
  env: null
  outputs:
  - count
  inputs:
    tick: dora/timer/nanos/333333333
  restart_policy: never
  max_restarts: 0
  deploy: null
- id: sink
  name: null
  description: null
  path: {NODES}/listener.py
  env: null
  outputs: []
  inputs:
    count:
      source: ticker/count
      queue_size: 10
    logs: dora/logs/stdout
  restart_policy: on-failure
  max_restarts: 0
  deploy: null
deploy: null
debug:
  enable_debug_inspection: false
health_check_interval: null
"""
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 0, done.stderr
    assert "ok: 2 nodes, 2 connections" in done.stdout
