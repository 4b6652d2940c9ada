"""The keeper link against a real ROUTER in the test (a keeper that answers once, then hangs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
import zmq

from daemon.model.errors import KeeperLost
from daemon.model.keeper_messages import (
    KEEPER_HUNG_S,
    FromKeeper,
    Ping,
    Pong,
    State,
    decode,
    encode,
)
from daemon.run import lifecycle
from daemon.run.keeper_link import HEARTBEAT_S, KEEPER_SILENCE_S, KeeperLink


async def _answer_once_then_hang(
    link: KeeperLink, router: zmq.Socket[bytes], answer: FromKeeper
) -> float:
    """Serve `link` against a keeper that answers its first ping with `answer`, then never
    again; the trio time of the answer (the link raises what it raises)."""
    answered_at: float | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.serve)
        while answered_at is None:
            try:
                identity, payload = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                await trio.sleep(0.01)
                continue
            assert decode(payload) == Ping()
            router.send_multipart([identity, encode(answer)])
            answered_at = trio.current_time()
        await trio.sleep_forever()
    raise AssertionError("unreachable: the link never returns")


async def _silence_until_lost(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    alive: Callable[[], bool] | None,
    answer: FromKeeper,
    match: str,
) -> tuple[float, list[FromKeeper], KeeperLink]:
    """How long a keeper that answers once stays silent before the link loses it."""
    endpoint = f"ipc://{tmp_path / 'keeper'}"
    router = zmq_context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    heard: list[FromKeeper] = []
    link = KeeperLink.connect(zmq_context, endpoint, heard.append)
    link.alive = alive
    started = trio.current_time()
    try:
        with pytest.RaisesGroup(pytest.RaisesExc(KeeperLost, match=match), flatten_subgroups=True):
            await _answer_once_then_hang(link, router, answer)
    finally:
        link.owner.socket.close(linger=0)
        router.close(linger=0)
    assert link.last_heard is not None
    assert link.last_heard >= started
    return trio.current_time() - link.last_heard, heard, link


async def test_a_keeper_that_falls_silent_is_lost_within_the_bound(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # real messages cross real sockets: jump the clock only once they had time to arrive
    autojump_clock.autojump_threshold = 0.05
    silent, heard, _ = await _silence_until_lost(
        zmq_context, tmp_path, None, Pong(), "run keeper lost: no answer"
    )
    assert heard == [Pong()]
    assert KEEPER_SILENCE_S <= silent <= KEEPER_SILENCE_S + 2 * HEARTBEAT_S


async def test_a_silent_keeper_whose_process_lives_is_waited_for_until_hung(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = 0.05
    silent, _, link = await _silence_until_lost(
        zmq_context, tmp_path, lambda: True, Pong(), "run keeper hung: its process lives"
    )
    assert link.stalled
    assert KEEPER_HUNG_S <= silent <= KEEPER_HUNG_S + 2 * HEARTBEAT_S


async def test_a_stalled_keeper_whose_process_ends_is_lost_at_the_next_beat(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = 0.05
    ends_at = trio.current_time() + 2 * KEEPER_SILENCE_S
    silent, _, _ = await _silence_until_lost(
        zmq_context,
        tmp_path,
        lambda: trio.current_time() < ends_at,
        Pong(),
        "run keeper lost: no answer",
    )
    assert 2 * KEEPER_SILENCE_S - HEARTBEAT_S <= silent <= 2 * KEEPER_SILENCE_S + 2 * HEARTBEAT_S


async def test_an_adopted_keeper_is_watched_by_the_pid_its_state_tells(
    zmq_context: zmq.Context[zmq.Socket[bytes]],
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = 0.05
    # a process that lives: its silence is a stall, waited for until the keeper is hung
    silent, heard, link = await _silence_until_lost(
        zmq_context, tmp_path, None, State(nodes={}, pid=os.getpid()), "run keeper hung"
    )
    assert heard == [State(nodes={}, pid=os.getpid())]
    assert link.alive is not None
    assert silent >= KEEPER_HUNG_S
    # a pid whose process is gone: lost at the first bound
    gone = await trio.lowlevel.open_process(["true"])
    await gone.wait()
    silent, _, _ = await _silence_until_lost(
        zmq_context, tmp_path, None, State(nodes={}, pid=gone.pid), "run keeper lost"
    )
    assert silent <= KEEPER_SILENCE_S + 2 * HEARTBEAT_S


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


async def test_a_keeper_that_does_not_exit_is_killed_and_collected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "KEEPER_EXIT_S", 0.2)
    keeper = await trio.lowlevel.open_process(["sleep", "30"])  # deaf to the quit
    await lifecycle._wait_keeper(keeper)
    # killed, and waited for: no zombie left in the process table
    assert not await trio.Path(f"/proc/{keeper.pid}").exists()
