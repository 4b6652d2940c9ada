"""A sender that exits right after a burst: what it queued reaches a receiver that is
behind (nothing lost) or restarting, and a receiver that is gone does not hold its exit up.

The fake daemon says what the real one does of a receiver that is down (`receiver_down`,
daemon/run/receiver_word.py): gone for good, or restarting."""

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

from node_sdk.flush import WORD_WAIT_S

BOUND_S = 30.0  # a safety bound on every wait, never an assertion about speed
FROZEN_S = 3.0  # longer than the 2 s linger a sender's close used to give its receivers
GONE_CLOSE_S = 1.5  # a close that waited for a gone receiver took 2 s (the old linger)
# the daemon's word on a receiver that ended for good (daemon/run/receiver_word.py)
GONE_FOR_GOOD = {"t": "receiver_down", "node": "receiver", "restarting": False}

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
n = int(os.environ["N"])
for i in range(n, n + int(os.environ.get("TAIL", "0"))):  # queued for a receiver not there
    node.send_output("out", i.to_bytes(4, "little"))
started = time.monotonic()
if os.environ.get("CLOSING"):
    open(os.environ["CLOSING"], "w").close()
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
    fake_daemon.send("sender", GONE_FOR_GOOD)
    closed = json.loads(finish(sender)[0])
    print(f"close took {closed['close_s']:.3f} s ({policy})")
    assert closed["close_s"] < min(GONE_CLOSE_S, WORD_WAIT_S)  # by the word, not the wait


# what the daemon says of a killed receiver, and whether the sender then waits WORD_WAIT_S
KILLED_WORDS: dict[str, tuple[dict[str, Any] | None, bool]] = {
    "gone for good": (GONE_FOR_GOOD, False),
    "the run stops": ({"t": "stop", "everyone": True}, False),
    "no word": (None, True),
}


@pytest.mark.parametrize("word", list(KILLED_WORDS))
def test_a_sender_whose_receiver_was_killed_waits_only_for_the_daemons_word(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, word: str
) -> None:
    """A killed receiver leaves its socket file behind: the sender's reconnection attempts
    fail, so it is down. The daemon's word that it ended for good, or that the whole run
    stops (none comes back), ends the wait at once; with no word (a receiver the daemon
    does not supervise, or no daemon) the sender gives it up `WORD_WAIT_S` after it saw
    the connection break, well within its `send_timeout_s` (10 s)."""
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
    message, waits = KILLED_WORDS[word]
    if message is not None:
        fake_daemon.send("sender", message)
    marker.touch()
    closed = json.loads(finish(sender)[0])
    print(f"close took {closed['close_s']:.3f} s (killed receiver, {word})")
    if waits:
        assert WORD_WAIT_S <= closed["close_s"] < WORD_WAIT_S + GONE_CLOSE_S
    else:
        assert closed["close_s"] < min(GONE_CLOSE_S, WORD_WAIT_S)  # by the word, not the wait


@pytest.mark.parametrize("policy", ["backpressure", "drop_oldest"])
def test_a_sender_waits_for_a_receiver_the_daemon_says_is_restarting(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, policy: str
) -> None:
    """The receiver is killed and the daemon says it is restarting; the sender sends 5
    more (within a backpressure edge's credits) and ends. Its close waits, and the
    receiver's next generation, bound 1.5 s later (longer than `WORD_WAIT_S`), gets those 5
    and the end-of-stream."""
    sender_cfg, receiver_cfg = node_configs(fake_daemon, sockdir, policy=policy,
                                            queue_size=50)  # fmt: skip
    marker, closing = tmp_path / "killed", tmp_path / "closing"
    receiver = spawn("receiver", RECEIVER, receiver_cfg, OUT=str(tmp_path / "first.json"),
                     DELAY="10")  # fmt: skip
    sender = spawn("sender", SENDER, sender_cfg, N="40", TAIL="5", AFTER=str(marker),
                   CLOSING=str(closing))  # fmt: skip
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    time.sleep(0.5)
    receiver.kill()
    receiver.communicate(timeout=BOUND_S)
    fake_daemon.send("sender", {"t": "receiver_down", "node": "receiver", "restarting": True})
    marker.touch()
    _wait_file(closing)
    time.sleep(1.5)
    out = tmp_path / "second.json"
    del fake_daemon.peers["receiver"]
    second = spawn("receiver2", RECEIVER, {**receiver_cfg, "generation": 2, "restarts": 1},
                   OUT=str(out))  # fmt: skip
    fake_daemon.wait_for("hello", {"receiver"})
    fake_daemon.send("receiver", {"t": "start"})
    closed = json.loads(finish(sender)[0])
    print(f"close took {closed['close_s']:.3f} s (restarting receiver, {policy})")
    assert closed["close_s"] > 1.5  # it waited for the next generation
    fake_daemon.send("receiver", {"t": "stop"})  # the end-of-stream closed its input first
    finish(second)
    got = json.loads(out.read_text())
    assert got["seqs"][-5:] == list(range(41, 46)), got["seqs"]
    assert got["last"] == ["INPUT_CLOSED", "STOP"]
