"""The relay behind `flow topic echo|hz` and `flow top` for a node on a member
(daemon/cluster/host_watch.py and remote_watch.py) in one process: the member's and the
coordinator's halves joined directly instead of by the cluster link, real sockets for the
node, the member's observer and the CLI. tests/cluster runs it across namespaces (root)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import zmq

from daemon.cluster import host_watch
from daemon.cluster.host_watch import HostWatch
from daemon.cluster.remote_watch import RemoteWatch
from daemon.model.cluster_messages import Carry
from daemon.model.errors import BadRequest
from node_sdk.frames import DataMessage, decode_data, encode_data

RUN = str(uuid.uuid4())
BOUND_S = 15.0


@attrs.define
class _Hosted:
    live: dict[str, tuple[int, int]]  # node -> (generation, pid), as daemon/cluster/host.py


@attrs.define
class _Host:
    runs: dict[str, _Hosted]


@attrs.define
class _Runtime:
    socket_dir: Path
    context: zmq.Context[zmq.Socket[bytes]]


@attrs.define
class _Pair:
    member: HostWatch
    coordinator: RemoteWatch
    link_up: bool = True


def _pair(folder: Path, context: zmq.Context[zmq.Socket[bytes]]) -> _Pair:
    host: Any = _Host({RUN: _Hosted({"cam": (1, os.getpid())})})
    pair = _Pair(HostWatch(_Runtime(folder, context), host, send=lambda carry: False),  # type: ignore[arg-type]
                 RemoteWatch(lambda machine, carry: False, context))  # fmt: skip

    def to_coordinator(carry: Carry) -> bool:
        if pair.link_up:
            pair.coordinator.on_carry("b", carry)
        return pair.link_up

    def to_member(machine: str, carry: Carry) -> bool:
        return machine == "b" and pair.link_up and pair.member.on_carry(carry)

    pair.member.send, pair.coordinator.send_carry = to_coordinator, to_member
    return pair


def _sent(value: object, seq: int) -> list[Any]:
    return encode_data(value, source="cam/out", generation=1, seq=seq,
                       timestamp_ns=time.time_ns(), metadata={"i": seq})  # fmt: skip


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(BOUND_S / 0.02)):
        if check():
            return
        await trio.sleep(0.02)
    raise AssertionError(f"not within {BOUND_S} s: {what}")


async def _received(cli: zmq.Socket[bytes], last_seq: int) -> list[DataMessage]:
    """What the CLI's socket gets, up to the message of seq `last_seq`."""
    got: list[DataMessage] = []
    deadline = trio.current_time() + BOUND_S
    while not (got and got[-1].header.seq == last_seq) and trio.current_time() < deadline:
        if cli.poll(0):
            got.append(decode_data(cli.recv_multipart()))
        else:
            await trio.sleep(0.01)
    return got


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    sockets = tmp_path / "s"
    sockets.mkdir(mode=0o700)
    return sockets


async def test_samples_reach_the_cli_whole_or_cut_and_the_observer_closes(
    folder: Path, zmq_context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    pair = _pair(folder, zmq_context)
    cli = zmq_context.socket(zmq.PULL)
    cli.bind(f"ipc://{folder / 'cli'}")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pair.member.serve)
        await trio.sleep(0.01)
        wired = await pair.coordinator.observe(RUN, "b", "ab" * 8, f"ipc://{folder / 'cli'}")
        assert wired.startswith(f"ipc://{folder}/obs-")
        node = zmq_context.socket(zmq.PUSH)
        node.connect(wired)
        for seq in range(1, 6):
            node.send_multipart(_sent(f"v{seq}", seq))
        node.send_multipart(_sent(bytes(100_000), 6))
        got = await _received(cli, 6)
        assert [m.value for m in got[:5]] == [f"v{i}" for i in range(1, 6)]
        assert [m.metadata for m in got[:5]] == [{"i": i} for i in range(1, 6)]
        assert got[5].header.extra["cut"] == 100_000  # the CLI shows its kind and size
        assert got[5].header.seq == 6
        usage = await pair.coordinator.usage(RUN, "b", 0.05)
        cpu, rss = usage["cam"]  # this process, measured by the member's half
        assert cpu is not None
        assert rss is not None
        assert rss > 0
        pair.coordinator.close("ab" * 8)
        await _until(lambda: not list(folder.glob("obs-*")), "the observer's socket removed")
        assert pair.member.observers == {}
        with pytest.raises(BadRequest, match="refused an observer"):
            await pair.coordinator.observe(str(uuid.uuid4()), "b", "cd" * 8, "ipc://x")
        pair.link_up = False
        with pytest.raises(BadRequest, match="machine b is not connected"):
            await pair.coordinator.observe(RUN, "b", "cd" * 8, "ipc://x")
        node.close(linger=0)
        nursery.cancel_scope.cancel()
    cli.close(linger=0)


async def test_a_relay_over_its_budget_drops_the_oldest_and_says_how_many(
    folder: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_watch, "BUDGET_PER_S", 2000)  # 200 bytes a tick
    monkeypatch.setattr(host_watch, "QUEUE_BYTES", 1000)
    monkeypatch.setattr(host_watch, "LEASE_S", 2.0)
    pair = _pair(folder, zmq_context)
    cli = zmq_context.socket(zmq.PULL)
    cli.bind(f"ipc://{folder / 'cli'}")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pair.member.serve)
        await trio.sleep(0.01)
        wired = await pair.coordinator.observe(RUN, "b", "ef" * 8, f"ipc://{folder / 'cli'}")
        node = zmq_context.socket(zmq.PUSH)
        node.connect(wired)
        for seq in range(1, 101):
            node.send_multipart(_sent(f"v{seq}", seq))
        node.send_multipart(_sent("last", 101))
        got = await _received(cli, 101)
        assert got[-1].value == "last"  # the newest kept, the oldest dropped
        assert len(got) < 101
        # each sample says how many were dropped before it: all told, none unaccounted for
        assert len(got) + got[-1].header.extra["rd"] == 101
        # not asked for again (no renewal): closed by the member itself
        await _until(lambda: not list(folder.glob("obs-*")), "the expired observer closed")
        node.close(linger=0)
        nursery.cancel_scope.cancel()
    cli.close(linger=0)
