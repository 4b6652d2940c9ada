"""The trio<->zmq bridge never drops a message silently: the caller hears it, the count shows."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import zmq

from daemon.run import node_channel, zmq_trio
from daemon.run.node_channel import bind_router
from daemon.run.peer_outbox import PeerOutbox
from daemon.run.runtime import Runtime
from daemon.run.zmq_trio import OwnerStatistics, SocketOwner
from daemon.store import Store


def test_a_full_outbox_refuses_to_the_caller_and_counts(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(zmq_trio, "MAX_OUTBOX", 3)
    socket = zmq_context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    drops: list[tuple[str, int]] = []
    owner = SocketOwner(socket, name="test socket", on_drop=lambda n, c: drops.append((n, c)))
    try:
        assert [owner.send([b"m"]) for _ in range(5)] == [True, True, True, False, False]
    finally:
        socket.close(linger=0)
    assert owner.statistics() == OwnerStatistics(queued=3, sent=0, dropped=2)
    assert drops == [("test socket", 1), ("test socket", 2)]
    assert "test socket: dropped a message" in caplog.text


async def test_a_message_to_a_gone_peer_is_counted_and_logged(
    zmq_context: zmq.Context[zmq.Socket[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    socket = zmq_context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unknown peer is an error, not a no-op
    socket.bind("inproc://gone")
    owner = SocketOwner(socket, name="router")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(owner.serve, lambda frames: None)
            assert owner.send([b"nobody", b"stop"])
            with trio.fail_after(5):
                while owner.statistics().dropped == 0:  # noqa: ASYNC110 (a plain counter)
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    finally:
        socket.close(linger=0)
    assert owner.statistics() == OwnerStatistics(queued=0, sent=0, dropped=1)
    assert "router: dropped a message to b'nobody'" in caplog.text


async def test_drops_show_in_the_daemon_status_lines(
    zmq_context: zmq.Context[zmq.Socket[bytes]], store: Store, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        rt = Runtime(home=tmp_path, socket_dir=tmp_path, store=store,
                     nodes_endpoint="ipc:///nonexistent", nursery=nursery,
                     context=zmq_context, degraded=["logs: disk full"])  # fmt: skip
        rt.note_drops("node channel", 1)
        rt.note_drops("control", 1)
        rt.note_drops("node channel", 7)  # one line per socket, the latest count
    assert rt.degraded == [
        "logs: disk full",
        "control: 1 outgoing messages dropped",
        "node channel: 7 outgoing messages dropped",
    ]


async def test_a_message_whose_handling_fails_is_dropped_and_the_socket_served_on(
    zmq_context: zmq.Context[zmq.Socket[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    server = zmq_context.socket(zmq.ROUTER)
    client = zmq_context.socket(zmq.DEALER)
    for socket in (server, client):
        socket.setsockopt(zmq.LINGER, 0)
    server.bind("inproc://handlers")
    client.connect("inproc://handlers")
    handled: list[bytes] = []

    def handle(frames: list[bytes]) -> None:
        if frames[-1] == b"bug":
            raise KeyError("a bug in a handler")  # before: out of serve(), ending the daemon
        handled.append(frames[-1])

    owner = SocketOwner(server, name="nodes")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(owner.serve, handle)
            for body in (b"bug", b"after", b"bug", b"last"):
                client.send(body)
            with trio.fail_after(5):
                while len(handled) < 2:  # noqa: ASYNC110 (a plain list)
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    finally:
        server.close(linger=0)
        client.close(linger=0)
    assert handled == [b"after", b"last"]
    failures = [r for r in caplog.records if "handling failed" in r.getMessage()]
    assert [r.getMessage() for r in failures] == [
        "nodes: dropped a message whose handling failed"
    ] * 2


@contextlib.asynccontextmanager
async def serving(owner: SocketOwner, client: zmq.Socket[bytes]) -> AsyncIterator[bytes]:
    """`owner` served while `client` says hello: the client's identity, which the ROUTER
    can reach from then on. Both sockets are closed on the way out."""
    peers: list[bytes] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(owner.serve, lambda frames: peers.append(frames[0]))
            client.send(b"hello")
            with trio.fail_after(5):
                while not peers:  # noqa: ASYNC110 (a plain list)
                    await trio.sleep(0.01)
            yield peers[0]
            nursery.cancel_scope.cancel()
    finally:
        owner.socket.close(linger=0)
        client.close(linger=0)


async def read_all(client: zmq.Socket[bytes], count: int, width: int) -> list[bytes]:
    """The first `width` bytes of each message `client` gets, until `count` are in or none
    came for 2 s (each one held in a PeerOutbox is retried within 0.1 s)."""
    received: list[bytes] = []
    quiet_since = trio.current_time()
    while len(received) < count and trio.current_time() - quiet_since < 2:
        if client.poll(0):
            received.append(client.recv()[:width])
            quiet_since = trio.current_time()
        else:
            await trio.sleep(0.001)
    return received


async def test_replies_a_full_peer_refuses_wait_in_the_peer_outbox_and_all_arrive(
    zmq_context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    # libzmq with ROUTER_MANDATORY and SNDHWM 1 refuses (EAGAIN) what a client that does
    # not read yet cannot take; without the outbox those replies were dropped silently
    server = zmq_context.socket(zmq.ROUTER)
    client = zmq_context.socket(zmq.DEALER)
    for socket in (server, client):
        socket.setsockopt(zmq.LINGER, 0)
    server.setsockopt(zmq.ROUTER_MANDATORY, 1)
    server.setsockopt(zmq.SNDHWM, 1)
    client.setsockopt(zmq.RCVHWM, 1)
    server.bind(f"ipc://{tmp_path}/replies")
    client.connect(f"ipc://{tmp_path}/replies")
    owner = SocketOwner(server, name="control", peers=PeerOutbox(name="control"))
    async with serving(owner, client) as peer:
        for i in range(100):  # 3 MiB: far more than the socket buffers take
            assert owner.send([peer, f"{i:03}".encode() + b"." * 32_000])
        with trio.fail_after(5):
            while owner.statistics().queued == 0:  # noqa: ASYNC110 (a plain counter)
                await trio.sleep(0.01)
        received = await read_all(client, 100, 3)
    assert len(received) == 100
    assert received == [f"{i:03}".encode() for i in range(100)]  # every one, in order
    assert owner.statistics() == OwnerStatistics(queued=0, sent=100, dropped=0)


async def test_a_node_that_does_not_read_its_channel_loses_nothing_it_is_sent(
    zmq_context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    # the node channel as the daemon binds it: 3000 messages of 1 KB to a node that reads
    # nothing meanwhile fill its pipe (1000) and the socket buffers; the rest waits in the
    # daemon, where libzmq used to drop it silently (ROUTER_MANDATORY was 0)
    endpoint = f"ipc://{tmp_path}/nodes"
    server = bind_router(zmq_context, endpoint, node_channel.OPTIONS)
    node = zmq_context.socket(zmq.DEALER)
    node.setsockopt(zmq.LINGER, 0)
    node.setsockopt(zmq.ROUTING_ID, b"run/node/1")
    node.connect(endpoint)
    owner = SocketOwner(server, name="node channel", peers=PeerOutbox(name="node channel"))
    async with serving(owner, node):
        for i in range(3000):
            assert owner.send([b"run/node/1", f"{i:04}".encode() + b"." * 1000])
            if i % 500 == 0:
                await trio.sleep(0.001)  # the owner moves them on, as the daemon loop does
        await trio.sleep(0.2)  # the owner has moved every one on: to libzmq, or held
        received = await read_all(node, 3000, 4)
    assert len(received) == 3000
    assert received == [f"{i:04}".encode() for i in range(3000)]  # every one, in order
    assert owner.statistics() == OwnerStatistics(queued=0, sent=3000, dropped=0)
