"""dora-shaped dataflows for async nodes: `recv_async` under asyncio, `async for` and an
awaited send under trio, cancellation, and STOP ending the loop.

As test_send_examples.py: our own dataflows in the shape of dora-rs examples (here
`python-recv-async`, and past dora), nodes importing `from dora import Node`, checked by
what they print under `flow run`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import flow, flow_run_ok, write_dataflow

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
    # the node's ending: "stopped", not "stopped by SIGTERM (STOP did not end it ...)"
    assert re.search(r"ticker +stopped\n", out), out[-3000:]


BACKPRESSURE_SENDER = """
import asyncio
import time
from dora import Node


async def main():
    node = Node()
    beats = 0

    async def heartbeat():  # must keep running while the sends wait for credit
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    task = asyncio.create_task(heartbeat())
    started = time.monotonic()
    for i in range(20):
        await node.send_output_async("values", str(i).encode())
    took = time.monotonic() - started
    task.cancel()
    # 20 sends to a receiver taking one per 50 ms cannot all go at once: they waited
    print(f"sender done: waited {took >= 0.5}, loop beat while waiting {beats >= 20}",
          flush=True)


asyncio.run(main())
"""

SLOW_RECEIVER = """
import time
from dora import Node

node = Node()
got = []
for event in node:
    if event["type"] == "INPUT":
        got.append(int(bytes(event["value"])))
        time.sleep(0.05)
print(f"slow receiver got {got}", flush=True)
"""


def test_send_output_async_waits_for_backpressure_without_blocking_the_loop(
    flow_home: Path, tmp_path: Path
) -> None:
    """An awaited send to a `backpressure` input with a small queue waits for credit in
    its worker thread: nothing is dropped, and the event loop keeps running meanwhile."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            outputs: [values]
          - id: receiver
            path: receiver.py
            inputs:
              values: {source: sender/values, queue_size: 2, queue_policy: backpressure}
        """,
        {"sender.py": BACKPRESSURE_SENDER, "receiver.py": SLOW_RECEIVER},
    )
    out = flow_run_ok(flow_home, yml)
    assert "sender done: waited True, loop beat while waiting True" in out
    assert f"slow receiver got {list(range(20))}" in out
