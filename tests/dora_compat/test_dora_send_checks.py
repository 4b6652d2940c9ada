"""What a dora node's sends are checked for: `output_types` at send time, and the sends of
a daemon thread still running while the interpreter exits (python-concurrent-rw's shape)."""

from __future__ import annotations

from pathlib import Path

from helpers import flow_run_ok, write_dataflow

TYPED_SENDER = """
import numpy as np
import pyarrow as pa
from dora import Node, OutputTypeError

node = Node()
node.send_output("reading", pa.array([21.5]))        # Float64 as declared
node.send_output("reading", np.array([1.0, 2.0]))    # a float64 numpy array fits too
node.send_output("label", pa.array(["ok"]))
node.send_output("label", "ok")                      # a str is a String
node.send_output("anything", b"raw bytes")           # a media type: not checked at send
for output, value in (("reading", pa.array([1], type=pa.int32())),
                      ("reading", np.zeros(2, dtype="float32")),
                      ("label", b"bytes")):
    try:
        node.send_output(output, value)
    except OutputTypeError as exc:
        print(f"refused: {exc}", flush=True)
    else:
        print(f"NOT REFUSED {output}", flush=True)
"""

COUNTER = """
from dora import Node

node = Node()
got = 0
for event in node:
    if event["type"] == "INPUT":
        got += 1
print(f"received {got}", flush=True)
"""


def test_output_types_are_checked_at_send(flow_home: Path, tmp_path: Path) -> None:
    """A value of another type than its output declares is refused in one line naming the
    node, the output, the declared and the given type; the right ones go through."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: sensor
            path: sender.py
            outputs: [reading, label, anything]
            output_types:
              reading: std/core/v1/Float64
              label: std/core/v1/String
              anything: std/media/v1/Image
          - id: sink
            path: counter.py
            inputs: {reading: sensor/reading, label: sensor/label, anything: sensor/anything}
        """,
        {"sender.py": TYPED_SENDER, "counter.py": COUNTER},
    )
    out = flow_run_ok(flow_home, yml)
    assert "NOT REFUSED" not in out
    assert (
        "refused: node 'sensor': output 'reading' is declared std/core/v1/Float64 (Arrow "
        "double) in output_types, but the value sent is Arrow int32"
    ) in out
    assert (
        "output 'reading' is declared std/core/v1/Float64 (Arrow double) in output_types, "
        "but the value sent is numpy float32"
    ) in out
    assert (
        "output 'label' is declared std/core/v1/String (Arrow string) in output_types, but "
        "the value sent is bytes"
    ) in out
    assert "received 5" in out  # the five right sends, none of the refused ones


LATE_SENDER = """
import threading
import time

from dora import Node


def publish(node):
    while True:
        time.sleep(0.05)
        node.send_output("data", b"x")  # bytes: no lazy import of pyarrow's in the thread


def read(node):
    while node.next() is not None:
        pass


node = Node()
threading.Thread(target=publish, args=(node,), daemon=True).start()
reader = threading.Thread(target=read, args=(node,))
reader.start()
reader.join()
print("main thread done", flush=True)
"""


def test_a_daemon_thread_sending_while_the_process_exits_is_quiet(
    flow_home: Path, tmp_path: Path
) -> None:
    """python-concurrent-rw's shape: two nodes read each other in a thread while a daemon
    thread sends; after STOP the main thread returns and the exit closes the node under the
    sending thread. Those late sends are dropped as under dora: no traceback, a clean exit."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: one
            path: talker.py
            inputs: {data: two/data}
            outputs: [data]
          - id: two
            path: talker.py
            inputs: {data: one/data}
            outputs: [data]
        """,
        {"talker.py": LATE_SENDER},
    )
    for _ in range(2):  # the race is at exit: look at it twice
        out = flow_run_ok(flow_home, yml, "--stop-after", "2s")
        assert out.count("main thread done") == 2
        assert "Traceback" not in out, out[-3000:]
        assert "cannot send" not in out
