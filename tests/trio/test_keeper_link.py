"""The keeper link against a real ROUTER in the test (a keeper that answers once, then hangs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
import zmq

from daemon.model.errors import KeeperLost
from daemon.model.keeper_messages import FromKeeper, Ping, Pong, decode, encode
from daemon.run.keeper_link import HEARTBEAT_S, KEEPER_SILENCE_S, KeeperLink


async def test_a_keeper_that_falls_silent_is_lost_within_the_bound(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # real messages cross real sockets: jump the clock only once they had time to arrive
    autojump_clock.autojump_threshold = 0.05
    endpoint = f"ipc://{tmp_path / 'keeper'}"
    router = zmq_context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    heard: list[FromKeeper] = []
    link = KeeperLink.connect(zmq_context, endpoint, heard.append)
    answered_at: float | None = None
    try:
        with pytest.RaisesGroup(
            pytest.RaisesExc(KeeperLost, match="run keeper lost"), flatten_subgroups=True
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link.serve)
                # the keeper hears the first ping, answers it once, then never again
                while answered_at is None:
                    try:
                        identity, payload = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        await trio.sleep(0.01)
                        continue
                    assert decode(payload) == Ping()
                    router.send_multipart([identity, encode(Pong())])
                    answered_at = trio.current_time()
                await trio.sleep_forever()
    finally:
        link.owner.socket.close(linger=0)
        router.close(linger=0)
    assert answered_at is not None
    assert heard == [Pong()]
    silent = trio.current_time() - answered_at
    assert KEEPER_SILENCE_S <= silent <= KEEPER_SILENCE_S + 2 * HEARTBEAT_S


async def test_a_stalled_daemon_loop_blames_no_keeper(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = 0.05
    endpoint = f"ipc://{tmp_path / 'keeper'}"
    router = zmq_context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    heard: list[FromKeeper] = []
    link = KeeperLink.connect(zmq_context, endpoint, heard.append)

    async def answer_every_ping() -> None:
        while True:
            try:
                identity, _ = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                await trio.sleep(0.25)  # each step costs the autojump threshold in real time
                continue
            router.send_multipart([identity, encode(Pong())])

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_every_ping)
            nursery.start_soon(link.serve)
            with trio.fail_after(10):
                while not heard:  # noqa: ASYNC110 (a plain list)
                    await trio.sleep(0.25)
            autojump_clock.jump(3 * KEEPER_SILENCE_S)  # the daemon's loop stood still
            answers = len(heard)
            await trio.sleep(3 * HEARTBEAT_S)
            assert len(heard) > answers  # the keeper still answers, and is not lost
            nursery.cancel_scope.cancel()
    finally:
        link.owner.socket.close(linger=0)
        router.close(linger=0)
