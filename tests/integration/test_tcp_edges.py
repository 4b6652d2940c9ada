"""Data across machines: real node processes on tcp:// edges with CURVE and heartbeats.

Each test runs on loopback, and again across two network namespaces joined by veth pairs
(tests/netns.py; root only, skipped with the reason otherwise). The nodes get the
FLOW_NODE_CONFIG the placement phase will hand them; the fake daemon's node channel is an
`ipc://` socket, which reaches into the namespaces (they share the filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netns
import pytest
import zmq
from fakes import FakeNodeRouter, node_configs
from helpers import finish, records

BOUND_S = 30.0  # a safety bound on every wait, never an assertion about speed
HEARTBEAT_IVL_S = 0.2
HEARTBEAT_TIMEOUT_S = 0.6
# a dead peer is noticed within ivl + timeout (docs/cluster-data.md); the slack is for a
# loaded machine, never a speed claim
NOTICE_BOUND_S = HEARTBEAT_IVL_S + HEARTBEAT_TIMEOUT_S + 5.0
BIG = 16 << 20

RECEIVER = """
import dataclasses, hashlib, json, os, time
from node_sdk import Node

wait_received = int(os.environ.get("WAIT_RECEIVED", "0"))
delay = float(os.environ.get("DELAY", "0"))
with open(os.environ["OUT"], "w") as out, Node() as node:
    while wait_received and sum(
            s.received for s in node.statistics().inputs.values()) < wait_received:
        time.sleep(0.01)  # a slow receiver: it reads nothing until everything arrived
    for event in node:
        record = {"type": str(event.type), "id": event.id and str(event.id), "seq": event.seq}
        if event.value is not None:
            record["n"] = len(event.value)
            if len(event.value) > 1024:
                record["sha"] = hashlib.sha256(event.value).hexdigest()
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
n = int(os.environ.get("N", "0"))
with Node() as node:
    if mode == "big":
        node.send_output("out", bytes.fromhex(os.environ["PATTERN"]) * (1 << 16))
    for i in range(n):
        node.send_output("out", i.to_bytes(4, "little"))
    if mode == "paced":
        for i in range(int(os.environ["PACED"])):
            node.send_output("out", i.to_bytes(4, "little"))
            time.sleep(0.01)
    if mode == "linger":
        print("sent", flush=True)
        for event in node:
            pass
    stats = {k: dataclasses.asdict(v) for k, v in node.statistics().outputs.items()}
print(json.dumps(stats), flush=True)
"""


@dataclass(frozen=True)
class Place:
    """Where the two nodes run: their command prefixes and the receiver's address."""

    sender: list[str]
    receiver: list[str]
    address: str
    port: int
    machines: list[netns.Machine]


@pytest.fixture(params=["loopback", "netns"])
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    if request.param == "loopback":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield Place([], [], "127.0.0.1", port, [])
        return
    reason = netns.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with netns.machines(2) as (a, b):
        yield Place(a.argv([]), b.argv([]), b.address, netns.free_port(), [a, b])


def key_pair(home: Path, name: str) -> tuple[str, str]:
    """A machine's key pair: its public key and the path of its private secret file."""
    public, secret = zmq.curve_keypair()
    path = home / f"{name}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(secret + b"\n")
    return public.decode(), str(path)


def tcp_section(
    key: tuple[str, str], admitted: list[str], grace_s: float = 0.0
) -> dict[str, Any]:
    return {"public_key": key[0], "secret_file": key[1], "admitted": admitted,
            "heartbeat_ivl_s": HEARTBEAT_IVL_S, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
            "link_grace_s": grace_s}  # fmt: skip


def tcp_configs(
    router: FakeNodeRouter, sockdir: Path, home: Path, place: Place, *,
    sender_key: tuple[str, str] | None = None, grace_s: float = 0.0, **edge: Any,
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str]]:  # fmt: skip
    """sender/out -> receiver/in over tcp://, each on its machine's key; the receiver
    admits the sender machine's key (`sender_key` may be another, unadmitted one)."""
    sender, receiver = node_configs(router, sockdir, **edge)
    ours, theirs = key_pair(home, "a"), key_pair(home, "b")
    endpoint = f"tcp://{place.address}:{place.port}"
    receiver["inputs"]["in"]["endpoint"] = endpoint
    receiver["tcp"] = tcp_section(theirs, [ours[0]], grace_s)
    edge_spec = sender["outputs"]["out"][0]
    edge_spec.update(endpoint=endpoint, server_key=theirs[0])
    sender["tcp"] = tcp_section(sender_key or ours, [])
    return sender, receiver, theirs


def start_pair(
    fake_daemon: FakeNodeRouter, spawn: Any, place: Place, sender_cfg: dict[str, Any],
    receiver_cfg: dict[str, Any], out: Path, receiver_env: dict[str, str] | None = None,
    **sender_env: str,
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:  # fmt: skip
    receiver = spawn("receiver", RECEIVER, receiver_cfg, place.receiver, OUT=str(out),
                     **(receiver_env or {}))  # fmt: skip
    sender = spawn("sender", SENDER, sender_cfg, place.sender, **sender_env)
    fake_daemon.wait_for("hello", {"sender", "receiver"})
    fake_daemon.start_all()
    return sender, receiver


def shm_segments(run: str) -> list[str]:
    short = run.replace("-", "")[-12:]
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"flow-{short}")]


def test_stream_in_order_with_a_16_mib_payload(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place,
) -> None:  # fmt: skip
    # a burst the sender's queue holds whole (SNDHWM 1000: a longer one is dropped at the
    # sender when the link is slower, as drop_oldest says), and a receiver queue as long
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, queue_size=1000)
    out = tmp_path / "events.jsonl"
    pattern = os.urandom(256)
    count = 900
    sender, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                  MODE="big", N=str(count), PATTERN=pattern.hex())  # fmt: skip
    stats = json.loads(finish(sender)[0].splitlines()[-1])
    finish(receiver)

    assert stats == {"out": {"sent": count + 1, "dropped": 0}}
    events = records(out)
    inputs = [e for e in events if e["type"] == "INPUT"]
    assert [e["seq"] for e in inputs] == list(range(1, count + 2))  # no gap, in order
    assert inputs[0]["n"] == BIG
    assert inputs[0]["sha"] == hashlib.sha256(pattern * (1 << 16)).hexdigest()
    assert [e["type"] for e in events[-3:]] == ["INPUT_CLOSED", "STOP", "END"]
    assert events[-1]["stats"]["in"] == {
        "received": count + 1, "dropped": 0, "queued": 0, "refused": 0}  # fmt: skip
    # the receiver is on another machine: the 16 MiB went over the socket, not through
    # shared memory (the sender made no segment)
    assert shm_segments(sender_cfg["run"]) == []


def test_backpressure_credits_across(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place,
) -> None:  # fmt: skip
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, policy="backpressure", queue_size=4)
    out = tmp_path / "events.jsonl"
    count = 3000  # more than any queue on the way holds: credits pace the sender
    sender, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                  {"DELAY": "0.0002"}, MODE="burst", N=str(count))  # fmt: skip
    stats = json.loads(finish(sender)[0].splitlines()[-1])
    finish(receiver)

    assert stats == {"out": {"sent": count, "dropped": 0}}  # the slow receiver lost nothing
    events = records(out)
    assert [e["seq"] for e in events if e["type"] == "INPUT"] == list(range(1, count + 1))
    assert events[-1]["stats"]["in"]["dropped"] == 0


def test_drop_oldest_across_keeps_the_newest(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place,
) -> None:  # fmt: skip
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, queue_size=10)
    out = tmp_path / "events.jsonl"
    count = 900  # the sender's queue (SNDHWM 1000) holds it: every drop is the receiver's
    sender, receiver = start_pair(
        fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
        {"WAIT_RECEIVED": str(count)}, MODE="burst", N=str(count))  # fmt: skip
    stats = json.loads(finish(sender)[0].splitlines()[-1])
    finish(receiver)

    assert stats == {"out": {"sent": count, "dropped": 0}}  # the sender never blocked
    events = records(out)
    assert [e["seq"] for e in events if e["type"] == "INPUT"] == list(
        range(count - 9, count + 1))  # fmt: skip
    assert events[-1]["stats"]["in"]["dropped"] == count - 10


def test_unadmitted_keys_deliver_nothing_and_read_nothing(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place,
) -> None:  # fmt: skip
    stranger = key_pair(flow_home, "stranger")
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, sender_key=stranger)
    out = tmp_path / "events.jsonl"
    sender, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                  MODE="linger", N="50")  # fmt: skip
    assert sender.stdout is not None
    assert sender.stdout.readline().strip() == "sent"
    endpoint = receiver_cfg["inputs"]["in"]["endpoint"]
    with _raw_context() as ctx:
        plain = ctx.socket(zmq.PUSH)  # no CURVE at all
        plain.connect(endpoint)
        plain.send(b"FLW1" + bytes(28), zmq.NOBLOCK)
        time.sleep(3 * HEARTBEAT_IVL_S + 1.0)  # time enough to deliver, if it could
    fake_daemon.send("receiver", {"t": "stop"})
    finish(receiver)
    fake_daemon.send("sender", {"t": "stop"})
    finish(sender)
    events = records(out)
    assert [e for e in events if e["type"] == "INPUT"] == []
    assert events[-1]["stats"]["in"]["received"] == 0


def test_a_process_posing_as_the_receiver_reads_nothing(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, flow_home: Path, place: Place,
) -> None:  # fmt: skip
    sender_cfg, _, _ = tcp_configs(fake_daemon, sockdir, flow_home, place)
    endpoint = f"tcp://{place.address}:{place.port}"
    got = flow_home / "stolen"
    # two impostors in turn on the receiver's address: plain, and CURVE with its own key
    impostor = spawn("impostor", IMPOSTOR, None, place.receiver, ENDPOINT=endpoint,
                     OUT=str(got))  # fmt: skip
    assert impostor.stdout is not None
    assert impostor.stdout.readline().strip() == "bound"
    sender = spawn("sender", SENDER, sender_cfg, place.sender, MODE="linger", N="50")
    fake_daemon.wait_for("hello", {"sender"})
    fake_daemon.start_all()
    assert sender.stdout is not None
    assert sender.stdout.readline().strip() == "sent"
    finish(impostor)
    fake_daemon.send("sender", {"t": "stop"})
    finish(sender)
    assert got.read_text() == "0 0"


IMPOSTOR = """
import os, time, zmq
ctx = zmq.Context()
counts = []
for curve in (False, True):
    sock = ctx.socket(zmq.PULL)
    if curve:
        public, secret = zmq.curve_keypair()
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret
    for _ in range(100):  # the first impostor's listener is released asynchronously
        try:
            sock.bind(os.environ["ENDPOINT"])
            break
        except zmq.ZMQError:
            time.sleep(0.05)
    if not curve:
        print("bound", flush=True)
    n, deadline = 0, time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if sock.poll(100):
            sock.recv_multipart()
            n += 1
    counts.append(n)
    sock.unbind(os.environ["ENDPOINT"])
    sock.close(linger=0)
open(os.environ["OUT"], "w").write(" ".join(map(str, counts)))
"""


@pytest.mark.parametrize("policy", ["drop_oldest", "backpressure"])
@pytest.mark.parametrize("how", ["silent", "killed"])
def test_a_dead_peer_is_noticed_by_the_heartbeat(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place, how: str, policy: str,
) -> None:  # fmt: skip
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, policy=policy)
    out = tmp_path / "events.jsonl"
    sender, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                  MODE="linger", N="5")  # fmt: skip
    _wait_lines(out, lambda events: sum(e["type"] == "INPUT" for e in events) == 5)
    # "silent": the peer stops answering and nothing tells the receiver: frozen on loopback
    # (its kernel keeps the connection open), its cable pulled across machines. "killed":
    # the process (across: every process of its machine) is SIGKILLed, no end-of-stream.
    cut_at = time.monotonic()
    if how == "killed":
        if place.machines:
            place.machines[0].kill()
        else:
            sender.kill()
    elif place.machines:
        place.machines[0].link(False)
    else:
        os.kill(sender.pid, signal.SIGSTOP)
    try:
        _wait_lines(out, lambda events: any(e["type"] == "INPUT_CLOSED" for e in events))
        noticed_s = time.monotonic() - cut_at
        finish(receiver)
    finally:
        if how == "silent" and place.machines:
            place.machines[0].link(True)
        elif how == "silent":
            os.kill(sender.pid, signal.SIGCONT)
    print(f"dead peer ({how}, {'netns' if place.machines else 'loopback'}) noticed after "
          f"{noticed_s:.2f} s")  # fmt: skip
    assert noticed_s < NOTICE_BOUND_S
    events = records(out)
    assert [e["type"] for e in events[-4:]] == ["INPUT", "INPUT_CLOSED", "STOP", "END"]
    assert [e["seq"] for e in events if e["type"] == "INPUT"] == [1, 2, 3, 4, 5]
    if how == "silent":
        fake_daemon.send("sender", {"t": "stop"})
    sender.communicate(timeout=BOUND_S)


@pytest.mark.parametrize("policy", ["drop_oldest", "backpressure"])
def test_a_link_back_within_the_grace_keeps_the_stream(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place, policy: str,
) -> None:  # fmt: skip
    """The link breaks (the heartbeat drops it) and comes back before `link_grace_s`: the
    sender reconnects, the input stays open, nothing is delivered twice, every loss is
    counted, and the stream ends with its own end-of-stream."""
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, grace_s=20.0, policy=policy,
        queue_size=1000 if policy == "drop_oldest" else 8)  # fmt: skip
    out = tmp_path / "events.jsonl"
    count = 300
    sender, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                  MODE="paced", PACED=str(count))  # fmt: skip
    _wait_lines(out, lambda events: sum(e["type"] == "INPUT" for e in events) >= 20)
    outage_s = HEARTBEAT_IVL_S + HEARTBEAT_TIMEOUT_S + 1.0  # long enough to be dropped
    if place.machines:
        place.machines[0].link(False)
        time.sleep(outage_s)
        place.machines[0].link(True)
    else:
        os.kill(sender.pid, signal.SIGSTOP)
        time.sleep(outage_s)
        os.kill(sender.pid, signal.SIGCONT)
    stats = json.loads(finish(sender)[0].splitlines()[-1])
    finish(receiver)

    assert stats["out"]["sent"] + stats["out"]["dropped"] == count
    events = records(out)
    seqs = [e["seq"] for e in events if e["type"] == "INPUT"]
    assert seqs == sorted(set(seqs))  # in order, never twice
    assert seqs[-1] == count  # the stream went on after the outage, to its end
    assert [e["type"] for e in events[-3:]] == ["INPUT_CLOSED", "STOP", "END"]
    final = events[-1]["stats"]["in"]
    assert final["received"] + final["dropped"] == count  # every loss counted


def test_a_sender_restarted_within_the_grace_keeps_the_input_open(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, tmp_path: Path, flow_home: Path,
    place: Place,
) -> None:  # fmt: skip
    """Generation 1 of the sender is killed (no end-of-stream); its daemon starts
    generation 2 on the same machine within `link_grace_s`: the input stays open, counts
    the new generation from 1, and closes at generation 2's end-of-stream."""
    sender_cfg, receiver_cfg, _ = tcp_configs(
        fake_daemon, sockdir, flow_home, place, grace_s=20.0, queue_size=100)
    out = tmp_path / "events.jsonl"
    first, receiver = start_pair(fake_daemon, spawn, place, sender_cfg, receiver_cfg, out,
                                 MODE="linger", N="5")  # fmt: skip
    _wait_lines(out, lambda events: sum(e["type"] == "INPUT" for e in events) == 5)
    first.kill()
    first.communicate(timeout=BOUND_S)
    time.sleep(HEARTBEAT_IVL_S + HEARTBEAT_TIMEOUT_S)  # the link is known broken by now
    second = spawn("sender2", SENDER, {**sender_cfg, "generation": 2}, place.sender,
                   MODE="burst", N="5")  # fmt: skip
    fake_daemon.pump(lambda: fake_daemon.peers["sender"].endswith(b"/2"), "hello of gen 2")
    fake_daemon.send("sender", {"t": "start"})
    finish(second)
    finish(receiver)
    events = records(out)
    assert [e["seq"] for e in events if e["type"] == "INPUT"] == [1, 2, 3, 4, 5] * 2
    assert [e["type"] for e in events[-3:]] == ["INPUT_CLOSED", "STOP", "END"]
    assert events[-1]["stats"]["in"]["dropped"] == 0


STARTER = """
import sys
from node_sdk import Node, NodeError
try:
    Node()
except NodeError as exc:
    print(exc, flush=True)
    sys.exit(3)
"""


def test_a_node_that_cannot_take_its_tcp_input_fails_in_one_line(
    fake_daemon: FakeNodeRouter, sockdir: Path, spawn: Any, flow_home: Path,
) -> None:  # fmt: skip
    """The port is taken (after the ZAP handler started: it is stopped cleanly), or the
    machine key file is readable by others: one NodeError line, no crash, no hang."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        place = Place([], [], "127.0.0.1", port, [])
        _, receiver_cfg, _ = tcp_configs(fake_daemon, sockdir, flow_home, place)
        node = spawn("busy", STARTER, receiver_cfg)
        out, err = node.communicate(timeout=BOUND_S)
    assert node.returncode == 3, err
    assert out.strip() == (f"input 'in': cannot bind tcp://127.0.0.1:{port}: Address already "
                           f"in use (addr='tcp://127.0.0.1:{port}')")  # fmt: skip
    Path(receiver_cfg["tcp"]["secret_file"]).chmod(0o640)
    node = spawn("loose", STARTER, receiver_cfg)
    out, err = node.communicate(timeout=BOUND_S)
    assert node.returncode == 3, err
    assert out.strip().endswith("mode 0o640 lets others read it (chmod 600)")


def _wait_lines(path: Path, done: Any) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        if path.exists() and done(records(path)):
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting on {path}")


@contextlib.contextmanager
def _raw_context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)

