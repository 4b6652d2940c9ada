"""dora-shaped dataflows for dora's other node API: timeouts, logging, the builder, the import.

As test_send_examples.py: our own dataflows in the shape of dora-rs examples, nodes
importing `from dora import Node`, checked by what they print under `flow run`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import flow, flow_env, flow_run_ok, write_dataflow

pytest.importorskip("pyarrow")

RUN_BOUND_S = 120


QUEUE_SENDER = """
import time
import pyarrow as pa
from dora import Node

node = Node()
start = time.monotonic()
first = node.next(timeout=2.0)  # the keepalive timer's first tick comes at once, as dora's
print(f"sender first event {first['type']} {first['id']}", flush=True)
sent = errors = 0
while time.monotonic() - start < 1.5:
    node.send_output("ts", pa.array([time.perf_counter_ns(), sent]))
    sent += 1
    time.sleep(0.001)
    event = node.next(timeout=0.001)
    if event is None:
        break
    if event["type"] == "ERROR":
        errors += 1
        last_error = event["error"]
print(f"sender sent {sent}, {errors} timeouts: {last_error}", flush=True)
"""

QUEUE_RECEIVER = """
import time
from dora import Node

node = Node()
got = 0
while True:
    message = node.next(timeout=0.05)
    if message is None:
        break
    if message["type"] != "INPUT":
        continue
    sent_ns = message["value"][0].as_py()
    assert (time.perf_counter_ns() - sent_ns) / 1e9 < 5.0
    got += 1
    time.sleep(0.01)
print(f"receiver got {got}", flush=True)
"""


def test_next_timeout_gives_an_error_event(flow_home: Path, tmp_path: Path) -> None:
    """queue_size_and_timeout_python: `next(timeout=...)` gives an ERROR event on timeout
    (so the sender keeps sending: a None would end it at once), and the first timer tick
    comes at once."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: send_data
            path: send_data.py
            inputs: {keepalive: dora/timer/millis/100000}
            outputs: [ts]
          - id: receive_data_with_sleep
            path: receive_data.py
            inputs: {ts: send_data/ts}
        """,
        {"send_data.py": QUEUE_SENDER, "receive_data.py": QUEUE_RECEIVER},
    )
    out = flow_run_ok(flow_home, yml)
    assert "sender first event INPUT keepalive" in out
    sent = int(out.split("sender sent ")[1].split(",")[0])
    assert sent > 20, out[-3000:]
    assert "timeouts: Timeout event stream error: Receiver timed out" in out
    got = int(out.split("receiver got ")[1].split()[0])
    assert 0 < got <= sent


LOGGING_SENSOR = """
from dora import Node

node = Node()
readings = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        readings += 1
        node.send_output("reading", str(20.0 + readings).encode())
        if readings == 3:
            node.log_warn(f"High temperature: {20.0 + readings}C")
            break
        node.log_info(f"Temperature: {20.0 + readings}C")
"""

LOGGING_PROCESSOR = """
from dora import Node

node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "reading":
        value = float(bytes(event["value"]))
        node.send_output("result", str(round(value * 1.8 + 32, 1)).encode())
        node.log_debug(f"Converted {value}C")
        node.log_trace("trace detail")
        node.log_error(f"checked {value}")
"""


def test_log_methods_go_to_the_node_log(flow_home: Path, tmp_path: Path) -> None:
    """log-aggregator's nodes: `log_info`/`log_warn`/`log_debug`/`log_error`/`log_trace`
    are records of the node's log, at their level (`flow logs --level`)."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sensor
            path: sensor.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [reading]
          - id: processor
            path: processor.py
            inputs: {reading: sensor/reading}
            outputs: [result]
        """,
        {"sensor.py": LOGGING_SENSOR, "processor.py": LOGGING_PROCESSOR},
    )
    done = flow(
        "run", "--name", "logagg", "--env", "FLOW_LOG_LEVEL=TRACE", str(yml),
        home=flow_home, timeout=RUN_BOUND_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = flow("logs", "logagg", "--json", home=flow_home)
    assert logs.returncode == 0, logs.stderr
    records = {
        (r["node"], r["level"], r["message"])
        for r in map(json.loads, logs.stdout.splitlines())
        if r["stream"] == "log"
    }
    assert ("sensor", "INFO", "Temperature: 21.0C") in records
    assert ("sensor", "WARNING", "High temperature: 23.0C") in records
    for level, message in [
        ("DEBUG", "Converted 23.0C"), ("TRACE", "trace detail"), ("ERROR", "checked 23.0"),
    ]:
        assert ("processor", level, message) in records, records


BUILDER_SCRIPT = """
import os
from dora import build, run
from dora.builder import DataflowBuilder

os.chdir(os.path.dirname(os.path.abspath(__file__)))
dataflow = DataflowBuilder(name="counting")
counter = dataflow.add_node(id="counter", path="counter.py", env={"LIMIT": "4"})
counter.add_input("tick", "dora/timer/millis/10")
count = counter.add_output("count")
printer = dataflow.add_node(id="printer", path="printer.py", build="echo built printer")
printer.add_input("count", count, queue_size=10)
dataflow.to_yaml("dataflow.yml")
print("Generated dataflow.yml", flush=True)
build("dataflow.yml")
run("dataflow.yml")
print("builder run returned", flush=True)
"""

BUILDER_COUNTER = """
import os
import pyarrow as pa
from dora import Node

node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT":
        sent += 1
        node.send_output("count", pa.array([sent]))
        if sent == int(os.environ["LIMIT"]):
            break
"""

BUILDER_PRINTER = """
from dora import Node

node = Node()
counts = [e["value"].to_pylist()[0] for e in node if e["type"] == "INPUT"]
print(f"printer counts {counts}", flush=True)
"""


def test_dataflow_builder_script(flow_home: Path, tmp_path: Path) -> None:
    """python-dataflow-builder: a script builds the YAML with `DataflowBuilder`, then
    `dora.build` and `dora.run` it; `dora` is on its path through `python -m
    node_sdk.dora_compat`, as for any script flow does not start."""
    files = {"make.py": BUILDER_SCRIPT, "counter.py": BUILDER_COUNTER}
    write_dataflow(tmp_path, "nodes: []\\n", {**files, "printer.py": BUILDER_PRINTER})
    env = flow_env(flow_home)
    env["PYTHONPATH"] = subprocess.run(
        [sys.executable, "-m", "node_sdk.dora_compat"], env=env, capture_output=True,
        text=True, check=True,
    ).stdout.strip()  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(tmp_path / "make.py")], env=env, capture_output=True, text=True,
        timeout=RUN_BOUND_S, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "Generated dataflow.yml" in out
    assert "builder run returned" in out
    assert "printer counts [1, 2, 3, 4]" in out
    spec = yaml.safe_load((tmp_path / "dataflow.yml").read_text())
    assert spec["nodes"][1]["inputs"] == {"count": {"source": "counter/count", "queue_size": 10}}


WHICH_DORA = """
import dora
from dora import Node

node = Node()
print(f"{node.node_id} imports {dora.__name__} from {dora.__file__}", flush=True)
"""


def test_flow_puts_its_dora_on_the_node_path(flow_home: Path, tmp_path: Path) -> None:
    """Every spawned node gets flow's `dora`; one whose `env:` sets PYTHONPATH to another
    `dora` gets that one (its own entries come first)."""
    own = tmp_path / "own" / "dora"
    own.mkdir(parents=True)
    (own / "__init__.py").write_text("from node_sdk import Node\n")
    yml = write_dataflow(
        tmp_path,
        f"""
        nodes:
          - id: plain
            path: which.py
          - id: vendored
            path: which.py
            env: {{PYTHONPATH: "{own.parent}"}}
        """,
        {"which.py": WHICH_DORA},
    )
    out = flow_run_ok(flow_home, yml)
    from node_sdk import dora_compat

    assert f"plain imports dora from {dora_compat.FOLDER}/dora/__init__.py" in out
    assert f"vendored imports dora from {own}/__init__.py" in out


DYNAMIC_GRAPH = """
nodes:
  - id: source
    path: source.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [count]
  - id: plot
    path: dynamic
    inputs: {count: source/count}
"""

DYNAMIC_SOURCE = """
import pyarrow as pa
from dora import Node

node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT":
        sent += 1
        node.send_output("count", pa.array([sent]))
"""

DYNAMIC_PLOT = """
from dora import Node

node = Node("plot")  # dora's dynamic node, started by hand
seen = 0
for event in node:
    if event["type"] == "INPUT":
        seen += 1
        if seen == 5:
            break
print(f"dynamic plot saw {seen} from {type(event['value']).__name__}", flush=True)
"""


def test_a_dynamic_dora_node_started_by_hand(daemon: Path, tmp_path: Path) -> None:
    """A dynamic node (`path: dynamic`) run by hand imports `dora` through
    `PYTHONPATH=$(python -m node_sdk.dora_compat)`, as docs/coming-from-dora.md says."""
    yml = write_dataflow(tmp_path, DYNAMIC_GRAPH, {"source.py": DYNAMIC_SOURCE})
    (tmp_path / "plot.py").write_text(DYNAMIC_PLOT)
    done = flow("start", str(yml), "--detach", "--name", "dyn", home=daemon)
    assert done.returncode == 0, done.stderr
    env = flow_env(daemon, {"FLOW_DATAFLOW": "dyn"})
    env["PYTHONPATH"] = subprocess.run(
        [sys.executable, "-m", "node_sdk.dora_compat"], env=env, capture_output=True,
        text=True, check=True,
    ).stdout.strip()  # fmt: skip
    plot = subprocess.run(
        [sys.executable, str(tmp_path / "plot.py")], env=env, capture_output=True,
        text=True, timeout=RUN_BOUND_S, check=False,
    )  # fmt: skip
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert "dynamic plot saw 5 from Int64Array" in plot.stdout
    assert flow("stop", "dyn", home=daemon).returncode == 0
