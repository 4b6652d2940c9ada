"""Real node processes on real zmq sockets, released by a fake daemon written here."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNodeRouter, node_configs
from helpers import finish, records

from daemon.model.logformat import record_from_output

BOUND_S = 15.0  # a safety bound on every wait, never an assertion about speed

RECORDER = """
import dataclasses, json, os, time
from node_sdk import Node

def describe(v):
    if v is None:
        return None
    if isinstance(v, memoryview):
        return {"kind": "bytes", "hex": v.hex(), "readonly": v.readonly}
    if isinstance(v, str):
        return {"kind": "str", "v": v}
    if type(v).__module__.startswith("numpy"):
        return {"kind": "numpy", "dtype": v.dtype.str, "shape": list(v.shape),
                "list": v.tolist(), "writeable": bool(v.flags.writeable)}
    return {"kind": "arrow", "type": str(v.type), "list": v.to_pylist()}

wait_received = int(os.environ.get("WAIT_RECEIVED", "0"))
delay = float(os.environ.get("DELAY", "0"))
with open(os.environ["OUT"], "w") as out, Node() as node:
    while node.statistics().inputs and sum(
        s.received for s in node.statistics().inputs.values()) < wait_received:
        time.sleep(0.01)  # a slow receiver: it reads nothing until everything arrived
    for event in node:
        record = {"type": str(event.type), "id": None if event.id is None else str(event.id),
                  "seq": event.seq, "metadata": event.metadata, "value": describe(event.value)}
        out.write(json.dumps(record) + "\\n")
        out.flush()
        if delay:
            time.sleep(delay)
    stats = {k: dataclasses.asdict(v) for k, v in node.statistics().inputs.items()}
    out.write(json.dumps({"type": "END", "stats": stats}) + "\\n")
"""

SENDER = """
import dataclasses, json, os, time
from node_sdk import Node

mode = os.environ["MODE"]
with Node() as node:
    if mode == "payloads":
        import numpy as np
        import pyarrow as pa
        node.send_output("out", b"\\x00\\x01", {"k": "v", "n": 3, "l": [1, 2.5, "x", None, True]})
        node.send_output("out", "h\\u00e9llo \\u2713")
        node.send_output("out", None)
        node.send_output("out", np.arange(6, dtype=np.int32).reshape(2, 3))
        node.send_output("out", pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}]))
        node.send_output("out", bytes(200_000))
    elif mode == "layouts":
        import numpy as np
        # one output, layouts in turn: each message's header must name its own layout
        # (the sender encodes it once per dtype and shape, the receiver parses it once)
        values = [np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(3, dtype=">f8"),
                  np.arange(6, dtype=np.int32).reshape(3, 2), np.array(7, dtype=np.uint8),
                  np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2],
                  np.array([1, 2], dtype="datetime64[ns]"),
                  np.arange(40_000, dtype=np.uint64).reshape(200, 200)]
        for round_ in range(2):
            for i, value in enumerate(values):
                meta = {"i": i} if (i + round_) % 2 else None
                node.send_output("out", value, meta)
    elif mode == "burst":
        for i in range(int(os.environ["N"])):
            node.send_output("out", i.to_bytes(4, "little"))
        time.sleep(float(os.environ.get("LINGER", "0")))  # a report of it is sent meanwhile
    elif mode == "paced":
        import time
        for i in range(int(os.environ["N"])):
            node.send_output("out", i.to_bytes(4, "little"))
            time.sleep(float(os.environ["PACE"]))
    elif mode == "idle":
        for event in node:
            pass
    stats = {k: dataclasses.asdict(v) for k, v in node.statistics().outputs.items()}
print(json.dumps(stats), flush=True)
"""

DORA_STYLE_SENDER = """
import pyarrow as pa
from node_sdk import Node

node = Node()
for i in range(3):
    node.send_output("numbers", pa.array([i, i * 10]), {"step": i})
"""

DORA_STYLE_RECEIVER = """
from node_sdk import Node

node = Node()
for event in node:
    if event["type"] == "INPUT":
        if event["id"] == "numbers":
            print("got", event["value"].to_pylist(), event["metadata"]["step"], flush=True)
    elif event["type"] == "STOP":
        print("stop", event["id"], flush=True)
"""


def test_payloads_cross_processes_then_inputs_close(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out))
    sender = spawn("sender", SENDER, sender_cfg, MODE="payloads")
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    before = time.time_ns()
    fake_daemon.start_all()
    stats = json.loads(finish(sender)[0])
    finish(receiver)
    fake_daemon.wait_for("bye", {"sender", "receiver"})

    assert stats == {"out": {"sent": 6, "dropped": 0}}
    events = records(out)
    inputs = [e for e in events if e["type"] == "INPUT"]
    assert [e["seq"] for e in inputs] == [1, 2, 3, 4, 5, 6]
    assert all(e["id"] == "in" and e["metadata"]["timestamp"] >= before for e in inputs)
    assert inputs[0]["metadata"] == {"timestamp": inputs[0]["metadata"]["timestamp"],
                                     "k": "v", "n": 3, "l": [1, 2.5, "x", None, True]}  # fmt: skip
    assert inputs[0]["value"] == {"kind": "bytes", "hex": "0001", "readonly": True}
    assert inputs[1]["value"] == {"kind": "str", "v": "h\u00e9llo \u2713"}
    assert inputs[2]["value"] is None
    assert inputs[3]["value"] == {"kind": "numpy", "dtype": "<i4", "shape": [2, 3],
                                  "list": [[0, 1, 2], [3, 4, 5]], "writeable": False}  # fmt: skip
    assert inputs[4]["value"] == {"kind": "arrow", "type": "struct<a: int64, b: string>",
                                  "list": [{"a": 1, "b": "x"}, {"a": 2, "b": None}]}  # fmt: skip
    assert inputs[5]["value"]["hex"] == "00" * 200_000
    assert [(e["type"], e.get("id")) for e in events[6:]] == [
        ("INPUT_CLOSED", "in"), ("STOP", "ALL_INPUTS_CLOSED"), ("END", None)]  # fmt: skip
    assert events[-1]["stats"]["in"] == {"received": 6, "dropped": 0, "queued": 0, "refused": 0}


def test_arrays_of_changing_layouts_on_one_output_arrive_right(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    import numpy as np

    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, queue_size=100)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out))
    sender = spawn("sender", SENDER, sender_cfg, MODE="layouts")
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    finish(sender)
    finish(receiver)
    values = [np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(3, dtype=">f8"),
              np.arange(6, dtype=np.int32).reshape(3, 2), np.array(7, dtype=np.uint8),
              np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2],
              np.array([1, 2], dtype="datetime64[ns]"),
              np.arange(40_000, dtype=np.uint64).reshape(200, 200)]  # fmt: skip
    inputs = [e for e in records(out) if e["type"] == "INPUT"]
    assert len(inputs) == 2 * len(values)
    for n, event in enumerate(inputs):
        i, round_ = n % len(values), n // len(values)
        expected = values[i]
        got = event["value"]
        assert (got["kind"], got["dtype"], got["shape"]) == (
            "numpy", expected.dtype.str, list(expected.shape)), n  # fmt: skip
        assert got["list"] == expected.tolist(), n
        assert got["writeable"] is False
        user = {k: v for k, v in event["metadata"].items() if k != "timestamp"}
        assert user == ({"i": i} if (i + round_) % 2 else {}), n


def test_stop_request_ends_both_nodes(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out))
    sender = spawn("sender", SENDER, sender_cfg, MODE="idle")
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    fake_daemon.send("receiver", {"t": "stop"})
    finish(receiver)  # before the sender stops: control and data come on different sockets
    fake_daemon.send("sender", {"t": "stop"})
    finish(sender)
    events = records(out)
    assert (events[0]["type"], events[0]["id"]) == ("STOP", "STOP_REQUESTED")
    # the sender closed after the receiver had stopped reading: its end-of-stream is counted
    # nowhere, and the receiver saw no second STOP
    assert [e["type"] for e in events] == ["STOP", "END"]
    fake_daemon.wait_for("bye", {"sender", "receiver"})


def test_stop_before_start_is_the_first_event(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    _, receiver_cfg = node_configs(fake_daemon, sockdir)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out))
    fake_daemon.wait_for("hello", {"receiver"})
    fake_daemon.send("receiver", {"t": "stop"})
    finish(receiver)
    assert [(e["type"], e.get("id")) for e in records(out)] == [
        ("STOP", "STOP_REQUESTED"), ("END", None)]  # fmt: skip


def test_upstream_done_closes_the_input_while_timers_tick(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    _, receiver_cfg = node_configs(fake_daemon, sockdir)
    receiver_cfg["inputs"]["tick"] = {"timer_ns": 5_000_000}
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out))
    fake_daemon.wait_for("hello", {"receiver"})
    fake_daemon.start_all()
    deadline = time.monotonic() + BOUND_S
    while not (out.exists() and '"tick"' in out.read_text()):
        assert time.monotonic() < deadline, "no timer tick"
        time.sleep(0.01)
    fake_daemon.send("receiver", {"t": "upstream_done", "input": "in", "source": "sender/out"})
    finish(receiver)
    events = records(out)
    ticks = [e for e in events if e.get("id") == "tick"]
    assert ticks
    assert all(e["type"] == "INPUT" and e["value"] is None for e in ticks)
    rest = [(e["type"], e.get("id")) for e in events if e.get("id") != "tick"]
    assert rest == [("INPUT_CLOSED", "in"), ("STOP", "ALL_INPUTS_CLOSED"), ("END", None)]


def test_logging_goes_to_stdout_as_records_in_order_with_prints(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any
) -> None:
    _, receiver_cfg = node_configs(fake_daemon, sockdir)
    receiver_cfg["inputs"] = {}
    script = """
    import logging
    from node_sdk import Node
    with Node() as node:
        logging.getLogger("recv").info("hello %s", "world")
        logging.getLogger("recv").debug("not shown at INFO")
        node.log("warning", "direct")
        print("plain stdout")
    """
    child = spawn("logger", script, receiver_cfg)
    fake_daemon.wait_for("hello", {"receiver"})
    fake_daemon.start_all()
    out, err = finish(child)
    assert err == ""
    # split on "\n" only: str.splitlines also splits at the marker's \x1e
    logs = [record_from_output("stdout", line) for line in out.split("\n") if line]
    assert [(r.stream, r.level, r.logger, r.message) for r in logs] == [
        ("log", "INFO", "recv", "hello world"),
        ("log", "WARNING", "receiver", "direct"),
        ("stdout", None, None, "plain stdout"),
    ]


def test_slow_receiver_keeps_the_newest_under_drop_oldest(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    sent = 500  # below the zmq high-water marks: every message reaches the receiver's queue
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, queue_size=10)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out), WAIT_RECEIVED=str(sent))
    sender = spawn("sender", SENDER, sender_cfg, MODE="burst", N=str(sent))
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    finish(sender)
    finish(receiver)
    events = records(out)
    delivered = [e["seq"] for e in events if e["type"] == "INPUT"]
    stats = events[-1]["stats"]["in"]
    assert delivered == list(range(sent - 9, sent + 1))
    assert len(delivered) + stats["dropped"] == sent
    assert stats["received"] == sent


# A delay below the receiver thread's check interval keeps the inputs with the node's own
# thread; one above it hands them over and back at every event (credits included); paced
# messages that come after the inbox ran empty make the node's thread ask for them anew.
@pytest.mark.parametrize(
    ("policy", "mode", "sent", "delay"),
    [
        ("backpressure", "burst", 300, "0.001"),
        ("backpressure", "burst", 40, "0.03"),
        ("backpressure", "paced", 8, "0.1"),
        ("drop_oldest", "paced", 8, "0.1"),
    ],
)
def test_every_message_arrives_at_a_slow_consumer(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path,
    policy: str, mode: str, sent: int, delay: str,
) -> None:  # fmt: skip
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, policy=policy, queue_size=2)
    out = tmp_path / "events.jsonl"
    receiver = spawn("receiver", RECORDER, receiver_cfg, OUT=str(out), DELAY=delay)
    sender = spawn("sender", SENDER, sender_cfg, MODE=mode, N=str(sent), PACE="0.15")
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    assert json.loads(finish(sender)[0]) == {"out": {"sent": sent, "dropped": 0}}
    finish(receiver)
    events = records(out)
    assert [e["seq"] for e in events if e["type"] == "INPUT"] == list(range(1, sent + 1))
    assert [e["type"] for e in events[-3:]] == ["INPUT_CLOSED", "STOP", "END"]
    assert events[-1]["stats"]["in"]["dropped"] == 0


def test_a_dead_receiver_never_blocks_a_drop_oldest_sender(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any
) -> None:
    sent = 3000  # more than the send high-water mark: the rest must be dropped, not waited on
    sender_cfg, _ = node_configs(fake_daemon, sockdir, receiver_bound=False)
    sender = spawn("sender", SENDER, sender_cfg, MODE="burst", N=str(sent), LINGER="2")
    fake_daemon.wait_for("hello", {"sender"})
    fake_daemon.start_all()

    def burst_reported() -> bool:
        reports = fake_daemon.stats.get("sender") or [{"outputs": {}}]
        out = reports[-1]["outputs"].get("out", {})
        return bool(out) and out["sent"] + out["dropped"] == sent

    fake_daemon.pump(burst_reported, "a report of the whole burst")
    reported = fake_daemon.stats["sender"][-1]["outputs"]["out"]
    # its bytes are those of the messages `sent` counts (4 each), not of the dropped ones
    assert reported["bytes"] == 4 * reported["sent"], reported
    stats = json.loads(finish(sender)[0])["out"]
    assert stats["sent"] + stats["dropped"] == sent
    assert stats["dropped"] > 0


def test_a_dora_style_script_runs_unchanged(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any
) -> None:
    sender_cfg, receiver_cfg = node_configs(
        fake_daemon, sockdir, output="numbers", input_id="numbers"
    )
    receiver = spawn("receiver", DORA_STYLE_RECEIVER, receiver_cfg)
    sender = spawn("sender", DORA_STYLE_SENDER, sender_cfg)
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    finish(sender)
    out, _ = finish(receiver)
    assert out.splitlines() == [
        "got [0, 0] 0", "got [1, 10] 1", "got [2, 20] 2", "stop ALL_INPUTS_CLOSED"]  # fmt: skip
    fake_daemon.wait_for("bye", {"sender", "receiver"})


def test_no_start_from_the_daemon_is_a_bounded_node_error(sockdir: Path, spawn: Any) -> None:
    config = {"run": str(uuid.uuid4()), "node": "lonely", "daemon": f"ipc://{sockdir}/nobody",
              "inputs": {}, "outputs": {}, "start_timeout_s": 0.2}  # fmt: skip
    script = """
    from node_sdk import Node, NodeError
    try:
        Node()
    except NodeError as exc:
        print(exc)
    """
    child = spawn("lonely", script, config)
    out, _ = finish(child)
    assert out == f"no start from the flow daemon at ipc://{sockdir}/nobody within 0.2 s\n"


def test_backpressure_to_a_dead_receiver_times_out_naming_it(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any
) -> None:
    sender_cfg, _ = node_configs(
        fake_daemon, sockdir, policy="backpressure", queue_size=4, receiver_bound=False
    )
    script = """
    from node_sdk import Node, SendTimeout
    with Node() as node:
        sent = 0
        try:
            while True:
                node.send_output("out", b"x")
                sent += 1
        except SendTimeout as exc:
            print(sent, exc)
    """
    child = spawn("sender", script, {**sender_cfg, "send_timeout_s": 0.2})
    fake_daemon.wait_for("hello", {"sender"})
    fake_daemon.start_all()
    out, _ = finish(child)
    assert out == (
        "4 output 'out': receiver receiver/in did not take the message within 0.2 s "
        "(backpressure; FLOW_SEND_TIMEOUT)\n"
    )


FAILING_RECEIVER_THREAD = """
import time
import node_sdk.ownership
from node_sdk import Node

def broken(self, seen):
    raise RuntimeError("injected")

node_sdk.ownership.Ownership.take = broken  # the receiver thread's first ownership check fails
with Node() as node:
    time.sleep(0.2)  # away from next(): the receiver thread checks, and fails
    for event in node:
        print(event.type, event.error or event.id, flush=True)
print("closed", flush=True)
"""


def test_a_failing_receiver_thread_ends_the_node_with_an_error(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any
) -> None:
    _, receiver_cfg = node_configs(fake_daemon, sockdir)
    receiver = spawn("receiver", FAILING_RECEIVER_THREAD, receiver_cfg)
    fake_daemon.wait_for("hello", {"receiver"})
    fake_daemon.start_all()
    lines = finish(receiver)[0].splitlines()  # bounded: close() does not wait on the thread
    assert lines[0].startswith("ERROR the receiver thread failed: RuntimeError('injected')")
    assert lines[1:] == ["STOP STOP_REQUESTED", "closed"]
