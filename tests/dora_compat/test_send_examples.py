"""dora-shaped dataflows that send and receive data, run by `flow run` with `from dora import Node`.

Each dataflow here is written for this project in the shape of one dora-rs example (named
in its test); its nodes use dora's API unchanged and print what that example's README
calls success, which the test reads from `flow run`'s output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import flow_run_ok, write_dataflow

pytest.importorskip("pyarrow")
pytest.importorskip("numpy")


def test_echo_forwards_arrays_and_metadata(flow_home: Path, tmp_path: Path) -> None:
    """python-echo: a timer-driven array goes through an echo node to a checker."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: source
            path: source.py
            inputs: {tick: dora/timer/millis/50}
            outputs: [numbers]
          - id: echo
            path: echo.py
            inputs: {numbers: source/numbers}
            outputs: [numbers]
          - id: checker
            path: checker.py
            inputs: {numbers: echo/numbers}
        """,
        {
            "source.py": """
                import pyarrow as pa
                from dora import Node

                node = Node()
                sent = 0
                for event in node:
                    if event["type"] == "INPUT" and sent < 5:
                        node.send_output("numbers", pa.array([10, 20, 30]), event["metadata"])
                        sent += 1
                    if sent == 5:
                        break
            """,
            "echo.py": """
                from dora import Node

                node = Node()
                for event in node:
                    if event["type"] == "INPUT":
                        node.send_output("numbers", event["value"], event["metadata"])
                    elif event["type"] == "STOP":
                        break
            """,
            "checker.py": """
                import datetime
                from dora import Node

                node = Node()
                matched = 0
                for event in node:
                    if event["type"] == "INPUT":
                        assert event["kind"] == "dora"
                        stamp = event["metadata"]["timestamp"]
                        assert isinstance(stamp, datetime.datetime) and stamp.tzinfo
                        if event["value"].to_pylist() == [10, 20, 30]:
                            matched += 1
                    elif event["type"] == "STOP":
                        break
                print(f"checker matched {matched}", flush=True)
            """,
        },
    )
    out = flow_run_ok(flow_home, yml)
    assert "checker matched 5" in out


DATAFLOW_SENDER = """
import time
import pyarrow as pa
from dora import Node

node = Node()
sent = 0
while sent < 8:
    event = node.try_recv()
    if event is not None and event["type"] == "STOP":
        break
    node.send_output("message", pa.array([sent]))
    sent += 1
    time.sleep(0.01)
"""

DATAFLOW_TRANSFORMER = """
import pyarrow as pa
from dora import Node

node = Node()
for event in node:
    if event["type"] == "INPUT":
        number = event["value"].to_pylist()[0]
        node.send_output("transformed", pa.StructArray.from_arrays(
            [pa.array([number * 2]), pa.array([f"Message #{number}"]),
             pa.array([number % 2 == 0])],
            names=["doubled", "description", "is_even"],
        ))
    elif event["type"] == "STOP":
        break
"""

DATAFLOW_RECEIVER = """
from dora import Node

node = Node()
messages, structs = [], []
for event in node:
    if event["type"] == "INPUT":
        if event["id"] == "message":
            messages += event["value"].to_pylist()
        else:
            structs += event["value"].to_pylist()
    elif event["type"] == "STOP":
        break
print(f"receiver messages {messages}", flush=True)
print(f"receiver last struct {structs[-1]} of {len(structs)}", flush=True)
"""


def test_python_dataflow_struct_arrays(flow_home: Path, tmp_path: Path) -> None:
    """python-dataflow: a paced sender polling `try_recv`, a transformer sending Arrow
    struct arrays, a receiver of both."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            outputs: [message]
          - id: transformer
            path: transformer.py
            inputs: {message: sender/message}
            outputs: [transformed]
          - id: receiver
            path: receiver.py
            inputs: {message: sender/message, transformed: transformer/transformed}
        """,
        {
            "sender.py": DATAFLOW_SENDER,
            "transformer.py": DATAFLOW_TRANSFORMER,
            "receiver.py": DATAFLOW_RECEIVER,
        },
    )
    out = flow_run_ok(flow_home, yml)
    assert f"receiver messages {list(range(8))}" in out
    last = {"doubled": 14, "description": "Message #7", "is_even": False}
    assert f"receiver last struct {last} of 8" in out


ZERO_COPY_YAML = """
nodes:
  - id: writer
    path: writer.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [big, image]
  - id: reader
    path: reader.py
    inputs: {big: writer/big, image: writer/image}
"""

ZERO_COPY_WRITER = """
import numpy as np
from dora import Node

BIG = 256 * 1024  # above the shared-memory threshold: written in place in a segment
node = Node()
ticks = 0
for event in node:
    if event["type"] != "INPUT":
        continue
    ticks += 1
    if ticks > 10:
        break
    with node.send_output_raw("big", BIG) as buf:
        view = np.asarray(buf, dtype=np.uint8)
        view[:] = ticks
        del view
    handler = node.send_output_raw("image", 300, metadata={"width": 10, "height": 10})
    mv = handler.as_memoryview()
    pixels = np.asarray(mv, dtype=np.uint8).reshape(100, 3)
    pixels[:, 0] = ticks
    pixels[:, 1] = 64
    pixels[:, 2] = 128
    del pixels
    mv.release()
    handler.send()
"""

ZERO_COPY_READER = """
from dora import Node

node = Node()
big = image = 0
for event in node:
    if event["type"] == "STOP":
        break
    if event["type"] != "INPUT":
        continue
    data = event["value"].to_numpy()
    if event["id"] == "big":
        big += 1
        assert len(data) == 256 * 1024 and data.min() == data.max() == big, (big, data[:4])
    else:
        image += 1
        meta = event["metadata"]
        assert (meta["width"], meta["height"]) == (10, 10)
        assert list(data[:3]) == [image, 64, 128], list(data[:3])
print(f"reader got {big} big + {image} image", flush=True)
"""


def test_zero_copy_send_raw_both_patterns(flow_home: Path, tmp_path: Path) -> None:
    """python-zero-copy-send (dataflow.yml): ten ticks, each one buffer written in a `with`
    block and one through `as_memoryview()` + `send()`; the receiver reads them intact."""
    yml = write_dataflow(
        tmp_path, ZERO_COPY_YAML, {"writer.py": ZERO_COPY_WRITER, "reader.py": ZERO_COPY_READER}
    )
    out = flow_run_ok(flow_home, yml)
    assert "reader got 10 big + 10 image" in out


CONTRACT_NODE = """
import numpy as np
from dora import Node

node = Node()
SIZE = 128 * 1024
results = []


def case(name):
    def wrap(body):
        try:
            body()
        except Exception as exc:
            results.append(f"FAIL {name}: {exc!r}")
        else:
            results.append(f"PASS {name}")
    return wrap


@case("refused while a view is open, sendable after")
def _():
    handler = node.send_output_raw("data", SIZE)
    mv = handler.as_memoryview()
    try:
        handler.send()
    except RuntimeError as exc:
        assert "still open" in str(exc)
    else:
        raise AssertionError("sent with a view open")
    mv.release()
    handler.send()


@case("a second send fails")
def _():
    handler = node.send_output_raw("data", 64)
    handler.send()
    try:
        handler.send()
    except RuntimeError as exc:
        assert "already" in str(exc)
    else:
        raise AssertionError("sent twice")


@case("as_buffer is one object, as_memoryview a new view each time")
def _():
    handler = node.send_output_raw("data", SIZE)
    assert handler.as_buffer() is handler.as_buffer()
    first, second = handler.as_memoryview(), handler.as_memoryview()
    assert first is not second
    first.release()
    try:
        handler.send()
    except RuntimeError:
        pass
    else:
        raise AssertionError("sent with the second view open")
    second.release()
    handler.send()


@case("no view after send")
def _():
    handler = node.send_output_raw("data", 64)
    buffer = handler.as_buffer()
    handler.send()
    for take in (handler.as_memoryview, handler.as_buffer):
        try:
            take()
        except RuntimeError:
            pass
        else:
            raise AssertionError("a view after send")
    try:
        memoryview(buffer)
    except (BufferError, ValueError):
        pass
    else:
        raise AssertionError("the cached buffer still gives views")


@case("a numpy array kept past the with block refuses the send")
def _():
    kept = {}
    try:
        with node.send_output_raw("data", SIZE) as buf:
            kept["array"] = np.asarray(buf, dtype=np.uint8)
    except RuntimeError as exc:
        assert "still open" in str(exc)
    else:
        raise AssertionError("sent under a live numpy array")
    del kept["array"]


@case("an exception in the with block sends nothing")
def _():
    handler = node.send_output_raw("data", SIZE)
    try:
        with handler as buf:
            np.asarray(buf, dtype=np.uint8)[:] = 7
            raise KeyError("inside")
    except KeyError:
        pass
    handler.send()  # still sendable: the block did not send it


@case("a size that is not a count of bytes is one clear error")
def _():
    for size in (b"abc", 2.5, True, -1):
        try:
            node.send_output_raw("data", size)
        except Exception as exc:
            assert "a buffer's size must be a count of bytes" in str(exc), repr(exc)
        else:
            raise AssertionError(f"took a size {size!r}")


@case("last: a marked buffer arrives")
def _():
    with node.send_output_raw("data", 8) as buf:
        np.asarray(buf, dtype=np.uint8)[:] = 42


print("\\n".join(results), flush=True)
failed = sum(r.startswith("FAIL") for r in results)
print(f"{len(results) - failed}/{len(results)} contract cases passed", flush=True)
raise SystemExit(1 if failed else 0)
"""

CONTRACT_SINK = """
from dora import Node

node = Node()
sizes = []
for event in node:
    if event["type"] == "INPUT":
        sizes.append(len(event["value"]))
        last = event["value"].to_pylist()
print(f"sink sizes {sizes} last {last[:2]}", flush=True)
"""


def test_zero_copy_send_contract(flow_home: Path, tmp_path: Path) -> None:
    """python-zero-copy-send (contract_dataflow.yml): the handler's safety rules, in a node;
    plus a receiver that sees exactly the buffers that were sent (no refused one)."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: contract
            path: contract.py
            outputs: [data]
          - id: sink
            path: sink.py
            inputs: {data: contract/data}
        """,
        {"contract.py": CONTRACT_NODE, "sink.py": CONTRACT_SINK},
    )
    out = flow_run_ok(flow_home, yml)
    assert "8/8 contract cases passed" in out
    big, small = 128 * 1024, 64
    # what was sent, in order: each case's one sent buffer; the refused `with` sends none
    assert f"sink sizes {[big, small, big, small, big, 8]} last [42, 42]" in out
