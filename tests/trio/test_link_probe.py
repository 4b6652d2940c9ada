"""Link probes (`flow doctor --cluster`) on loopback CURVE, in one process: the coordinator's
LinkDoctor and a member's ProbeAgent over a real cluster link, and the probe sockets'
diagnoses. The namespace tests (tests/cluster/test_doctor.py) need root; these run anywhere.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from run_fakes import FlakyStore

from daemon.cluster.coordinator import Coordinator
from daemon.cluster.doctor import LinkDoctor
from daemon.cluster.join import join
from daemon.cluster.keys import machine_keys
from daemon.cluster.link import Timing
from daemon.cluster.member import Member
from daemon.cluster.probe import ProbeFailed, Receiver, security, send_probe
from daemon.cluster.probe_agent import LocalProber, ProbeAgent
from daemon.model import cluster_messages as msg
from daemon.model.cluster import parse_listen
from daemon.model.cluster_probe import every_pair

TIMING = Timing(heartbeat=0.1, lost_after=0.6)
BOUND_S = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir(mode=0o700)
    return home


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(BOUND_S / 0.02)):
        if check():
            return
        await trio.sleep(0.02)
    pytest.fail(f"not within {BOUND_S} s: {what}")


async def test_every_pair_probed_both_ways_over_the_link(
    tmp_path: Path, store: FlakyStore
) -> None:
    listen = parse_listen(f"tcp://127.0.0.1:{_free_port()}")
    home_a, home_b = _home(tmp_path, "a"), _home(tmp_path, "b")
    coordinator = Coordinator(store, "a", listen, machine_keys(home_a), TIMING)
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve)
        token = coordinator.new_token(None).token
        membership = await trio.to_thread.run_sync(join, home_b, "b", token)
        member = Member(home_b, membership, machine_keys(home_b), TIMING)
        agent = ProbeAgent(LocalProber(home_b, member.keys, TIMING), member.send_report)
        member.on_probe = agent.on_request
        nursery.start_soon(agent.serve)
        nursery.start_soon(member.serve)
        await _until(lambda: coordinator.peers["b"].state == "connected", "b connected")

        with trio.fail_after(BOUND_S):
            rows = await LinkDoctor(coordinator, home_a).probe(every_pair(["a", "b"]),
                                                               1 << 20, 5.0)  # fmt: skip
        assert [(row.source, row.target, row.error) for row in rows] == [
            ("a", "b", None), ("b", "a", None)]  # fmt: skip
        for row in rows:
            assert row.small_s is not None
            assert row.large_s is not None
            assert 0 < row.small_s < BOUND_S
            assert 0 < row.large_s < BOUND_S
        assert coordinator.probes == {}  # nothing left waiting
        await _until(lambda: agent.receivers == 0, "the member's receiver closed")

        # a member whose link lives but who answers no probe: reported within the bound,
        # and not asked a second time (both its links fail after one wait)
        member.on_probe = lambda request: None
        with trio.fail_after(BOUND_S):
            rows = await LinkDoctor(coordinator, home_a).probe(every_pair(["a", "b"]),
                                                               1 << 20, 1.0)  # fmt: skip
        assert [row.error for row in rows] == [
            "machine b did not answer a probe request within 5 s (lost, or its link down)"] * 2
        nursery.cancel_scope.cancel()


def _receiver(home: Path, admitted: str) -> tuple[Receiver, str]:
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    return Receiver(security(home, machine_keys(home), TIMING, (admitted,)), endpoint), endpoint


def _serving(receiver: Receiver) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=receiver.serve, args=(BOUND_S, stop))
    thread.start()
    return thread, stop


def test_a_probe_names_where_it_stopped(tmp_path: Path) -> None:
    home_a, home_b, home_c = (_home(tmp_path, name) for name in "abc")
    a, b = machine_keys(home_a), machine_keys(home_b)
    sender = security(home_a, a, TIMING, ())

    receiver, endpoint = _receiver(home_b, a.public)  # admits a: whole
    thread, stop = _serving(receiver)
    try:
        measured = send_probe(sender, endpoint, b.public, 4 << 20, 5.0)
    finally:
        stop.set()
        thread.join(BOUND_S)
    assert 0 < measured.small_s < BOUND_S
    assert 0 < measured.large_s < BOUND_S

    receiver, endpoint = _receiver(home_b, machine_keys(home_c).public)  # admits c, not a
    thread, stop = _serving(receiver)
    try:
        with pytest.raises(ProbeFailed, match="the receiver's ZAP check refused this machine's"):
            send_probe(sender, endpoint, b.public, 1024, 1.0)
        # a sender that pins another key than the receiver's: no handshake completes
        with pytest.raises(ProbeFailed, match="CURVE handshake"):
            send_probe(sender, endpoint, machine_keys(home_c).public, 1024, 1.0)
    finally:
        stop.set()
        thread.join(BOUND_S)

    with pytest.raises(ProbeFailed, match=r"no TCP connection to .* \(refused: nothing listens"):
        send_probe(sender, f"tcp://127.0.0.1:{_free_port()}", b.public, 1024, 0.5)

    with pytest.raises(ProbeFailed, match=r"edge to tcp://127\.0\.0\.1:port"):
        send_probe(sender, "tcp://127.0.0.1:port", b.public, 1024, 0.5)

    # a port taken already: the receiver says it cannot bind, in one line
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ProbeFailed, match=f"cannot bind tcp://127.0.0.1:{port}"):
            Receiver(security(home_b, b, TIMING, (a.public,)), f"tcp://127.0.0.1:{port}")


async def test_a_member_refuses_malformed_probe_requests(tmp_path: Path) -> None:
    home = _home(tmp_path, "b")
    reports: list[msg.ProbeReport] = []
    agent = ProbeAgent(LocalProber(home, machine_keys(home), TIMING),
                       lambda report: reports.append(report) is None)  # fmt: skip
    key = machine_keys(home).public
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.serve)
        agent.on_request(msg.ProbeListen("p1", "127.0.0.1", "not a key", "5"))
        agent.on_request(msg.ProbeListen("p2", "127.0.0.1", key, "1e9"))
        agent.on_request(msg.ProbeSend("p3", "ipc:///tmp/x", key, "8", "1"))
        agent.on_request(msg.ProbeSend("p4", "tcp://127.0.0.1:1", key, str(1 << 30), "1"))
        agent.on_request(msg.ProbeSend("p5", "tcp://127.0.0.1:1", key, "8", "nan"))
        await _until(lambda: len(reports) == 5, "five answers")
        nursery.cancel_scope.cancel()
    assert all("malformed probe request" in report.error for report in reports), reports
    assert agent.receivers == 0
