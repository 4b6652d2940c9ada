"""dora-shaped dataflows for dora's other node API: async, timeouts, logging, the builder.

As test_send_examples.py: our own dataflows in the shape of dora-rs examples, nodes
importing `from dora import Node`, checked by what they print under `flow run`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import flow, flow_env, flow_run_ok, write_dataflow

pytest.importorskip("pyarrow")

RUN_BOUND_S = 120


ASYNC_SENDER = """
import time
import pyarrow as pa
from dora import Node

node = Node()
for i in range(10):
    node.send_output("values", pa.array([i], type=pa.int64()))
    time.sleep(0.02)
"""

ASYNC_RECEIVER = """
import asyncio
import pyarrow as pa
from dora import Node


async def main():
    node = Node()
    received = 0
    ticks = 0

    async def ticker():  # the loop stays free while recv_async waits
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    while True:
        event = await node.recv_async(timeout=5.0)
        if event is None or event["type"] == "STOP":
            break
        if event["type"] == "INPUT":
            values = event["value"].to_pylist()
            assert len(values) == 1 and isinstance(values[0], int), values
            node.send_output("echo", pa.array(values, type=pa.int64()))
            received += 1
    task.cancel()
    assert received >= 5 and ticks > 0, (received, ticks)
    print(f"recv-async: SUCCESS - received and echoed {received} messages", flush=True)


asyncio.run(main())
"""


def test_recv_async_under_asyncio(flow_home: Path, tmp_path: Path) -> None:
    """python-recv-async: `await node.recv_async(timeout=...)` and a send from the loop."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            outputs: [values]
          - id: async-receiver
            path: receiver.py
            inputs: {values: sender/values}
            outputs: [echo]
        """,
        {"sender.py": ASYNC_SENDER, "receiver.py": ASYNC_RECEIVER},
    )
    out = flow_run_ok(flow_home, yml)
    assert "recv-async: SUCCESS - received and echoed 10 messages" in out


TRIO_NODE = """
import trio
from dora import Node


async def main():
    node = Node()
    seen = []
    # a cancelled wait loses nothing: the event it waited for comes with the next call
    with trio.move_on_after(0):
        early = await node.recv_async()
        seen.append(early["value"].to_pylist()[0])  # only if it was there before the cancel
    async for event in node:
        if event["type"] == "INPUT":
            seen.append(event["value"].to_pylist()[0])
            await node.send_output_async("doubled", event["value"])
    print(f"trio saw {seen} then {event['type']}", flush=True)


trio.run(main)
"""

TRIO_SINK = """
from dora import Node

node = Node()
got = [event["value"].to_pylist()[0] for event in node if event["type"] == "INPUT"]
print(f"sink got {got}", flush=True)
"""


def test_async_for_under_trio(flow_home: Path, tmp_path: Path) -> None:
    """Past dora: `async for event in node` under trio ends after STOP; an awaited send; a
    cancelled `recv_async` loses no event."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            outputs: [values]
          - id: trio-node
            path: trio_node.py
            inputs: {values: sender/values}
            outputs: [doubled]
          - id: sink
            path: sink.py
            inputs: {values: trio-node/doubled}
        """,
        {"sender.py": ASYNC_SENDER, "trio_node.py": TRIO_NODE, "sink.py": TRIO_SINK},
    )
    out = flow_run_ok(flow_home, yml)
    assert f"trio saw {list(range(10))} then STOP" in out
    assert f"sink got {list(range(10))}" in out


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


LEAVER = """
import asyncio
from dora import Node


async def main():
    node = Node()
    try:
        await asyncio.wait_for(node.recv_async(), 0.2)  # the sender is silent for now
    except TimeoutError:
        print("leaver gave up waiting", flush=True)


asyncio.run(main())
print("leaver closed", flush=True)  # atexit closes the node, the worker still in next()
"""

SLOW_SENDER = """
import time
from dora import Node

node = Node()
time.sleep(1.0)
node.send_output("values", b"late")
"""


def test_a_node_leaving_with_a_cancelled_recv_async_ends_cleanly(
    flow_home: Path, tmp_path: Path
) -> None:
    """A timed-out `recv_async` leaves a worker in `next`; the node's exit still closes it
    (within a slice) and the run succeeds."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            outputs: [values]
          - id: leaver
            path: leaver.py
            inputs: {values: sender/values}
        """,
        {"sender.py": SLOW_SENDER, "leaver.py": LEAVER},
    )
    out = flow_run_ok(flow_home, yml)
    assert "leaver gave up waiting" in out
    assert "leaver closed" in out
    assert "Traceback" not in out


TICKING_TRIO = """
import trio
from dora import Node


async def main():
    node = Node()
    ticks = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)  # other work of the node
        async for event in node:
            if event["type"] == "INPUT":
                ticks += 1
                assert event["metadata"]["timestamp"].tzinfo is not None
            last = event
        nursery.cancel_scope.cancel()  # STOP ended the loop: the node winds down
    print(f"ticker ended on {last['type']} {last['id']} after {ticks} ticks", flush=True)


trio.run(main)
"""


def test_a_stop_request_ends_async_for(flow_home: Path, tmp_path: Path) -> None:
    """`flow run --stop-after`: the STOP event ends `async for` under trio, so the node's
    other tasks can be cancelled and the node exits before any SIGTERM."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: ticker
            path: ticker.py
            inputs: {tick: dora/timer/millis/20}
        """,
        {"ticker.py": TICKING_TRIO},
    )
    done = flow("run", "--stop-after", "1s", str(yml), home=flow_home, timeout=RUN_BOUND_S)
    out = done.stdout + done.stderr
    assert "ticker ended on STOP STOP_REQUESTED after" in out, out[-3000:]
    ticks = int(out.split("ticker ended on STOP STOP_REQUESTED after ")[1].split()[0])
    assert ticks >= 1
    # the node's ending: "stopped", not "stopped by SIGTERM after the grace (it ignored STOP)"
    assert re.search(r"ticker +stopped\n", out), out[-3000:]
