"""A sender that exits right after a burst: what it queued reaches a receiver that is
behind (nothing lost), and a receiver that is gone does not hold its exit up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNodeRouter, node_configs
from helpers import finish

BOUND_S = 30.0  # a safety bound on every wait, never an assertion about speed
FROZEN_S = 3.0  # longer than the 2 s linger a sender's close used to give its receivers
GONE_CLOSE_S = 1.5  # a close that waited for a gone receiver took 2 s (the old linger)

SENDER = """
import json, os, time
from node_sdk import Node

node = Node()
for i in range(int(os.environ["N"])):
    node.send_output("out", i.to_bytes(4, "little"))
if os.environ.get("AFTER"):  # the receiver exits meanwhile
    while not os.path.exists(os.environ["AFTER"]):
        time.sleep(0.01)
    time.sleep(0.2)
started = time.monotonic()
node.close()
stats = node.statistics().outputs["out"]
print(json.dumps({"close_s": time.monotonic() - started, "sent": stats.sent,
                  "dropped": stats.dropped}), flush=True)
"""

RECEIVER = """
import json, os, time
from node_sdk import Node

seqs, kinds = [], []
stop_after = int(os.environ.get("STOP_AFTER", "0"))
with Node() as node:
    for event in node:
        kinds.append(str(event.type))
        if event.type == "INPUT":
            seqs.append(event.seq)
            time.sleep(float(os.environ.get("DELAY", "0")))
            if stop_after and len(seqs) == stop_after:
                break
    stats = node.statistics().inputs["in"]
with open(os.environ["OUT"], "w") as out:
    json.dump({"seqs": seqs, "last": kinds[-2:], "dropped": stats.dropped}, out)
"""


def _wait_file(path: Path) -> None:
    deadline = time.monotonic() + BOUND_S
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)


@pytest.mark.parametrize("policy", ["backpressure", "drop_oldest"])
def test_a_burst_then_exit_reaches_a_receiver_that_is_far_behind(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, policy: str
) -> None:
    """20,000 messages and an exit at once, while the receiver is frozen (a loaded machine
    does not run it) for longer than the old 2 s linger, then reads slowly: every message
    and the end-of-stream arrive, none counted as dropped."""
    sent = 20_000
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, policy=policy,
                                            queue_size=sent + 10)  # fmt: skip
    out = tmp_path / "got.json"
    receiver = spawn("receiver", RECEIVER, receiver_cfg, OUT=str(out), DELAY="0.00005")
    sender = spawn("sender", SENDER, sender_cfg, N=str(sent))
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    os.kill(receiver.pid, signal.SIGSTOP)
    try:
        fake_daemon.start_all()
        time.sleep(FROZEN_S)
    finally:
        os.kill(receiver.pid, signal.SIGCONT)
    closed = json.loads(finish(sender)[0])
    assert closed["sent"] == sent
    try:
        finish(receiver)
    except subprocess.TimeoutExpired:  # the end-of-stream was lost with the messages
        fake_daemon.send("receiver", {"t": "stop"})
        receiver.communicate(timeout=BOUND_S)
    got = json.loads(out.read_text())
    assert got["seqs"] == list(range(1, sent + 1))
    assert got["dropped"] == 0
    assert got["last"] == ["INPUT_CLOSED", "STOP"]


@pytest.mark.parametrize("policy", ["backpressure", "drop_oldest"])
def test_a_sender_whose_receiver_exited_closes_at_once(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, policy: str
) -> None:
    """The receiver reads a few messages and exits; the sender goes on, then closes: its
    end-of-stream and what is still queued have no one to go to, and it does not wait."""
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, policy=policy, queue_size=50)
    out = tmp_path / "got.json"
    receiver = spawn("receiver", RECEIVER, receiver_cfg, OUT=str(out), STOP_AFTER="3",
                     DELAY="0.01")  # fmt: skip
    sender = spawn("sender", SENDER, sender_cfg, N="40", AFTER=str(out))
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    _wait_file(out)
    finish(receiver)
    closed = json.loads(finish(sender)[0])
    print(f"close took {closed['close_s']:.3f} s ({policy})")
    assert closed["close_s"] < GONE_CLOSE_S


def test_a_sender_whose_receiver_was_killed_closes_soon(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path
) -> None:
    """A killed receiver leaves its socket file behind: the sender's reconnection attempts
    fail, and that is enough to stop waiting."""
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, queue_size=50)
    marker = tmp_path / "killed"
    receiver = spawn("receiver", RECEIVER, receiver_cfg, OUT=str(tmp_path / "got.json"),
                     DELAY="10")  # fmt: skip
    sender = spawn("sender", SENDER, sender_cfg, N="40", AFTER=str(marker))
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    time.sleep(0.5)
    receiver.kill()
    receiver.communicate(timeout=BOUND_S)
    marker.touch()
    closed = json.loads(finish(sender)[0])
    print(f"close took {closed['close_s']:.3f} s (killed receiver)")
    assert closed["close_s"] < GONE_CLOSE_S
