"""The coordinator and a member in one process on loopback CURVE: the link's logic anywhere.

The namespace tests (tests/cluster) need root; these run everywhere: a real Coordinator
and Member, real CURVE sockets on 127.0.0.1, a real store, short heartbeats.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from run_fakes import FlakyStore

from daemon.cluster import member as member_module
from daemon.cluster.coordinator import Coordinator
from daemon.cluster.join import JoinRefused, join
from daemon.cluster.keys import machine_keys, read_membership
from daemon.cluster.link import Timing
from daemon.cluster.member import Member
from daemon.model.cluster import parse_listen
from daemon.model.retry import Backoff

TIMING = Timing(heartbeat=0.1, lost_after=0.6)
BOUND_S = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(BOUND_S / 0.02)):  # polls: the state lives in plain attributes
        if check():
            return
        await trio.sleep(0.02)
    pytest.fail(f"not within {BOUND_S} s: {what}")


def _home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir(mode=0o700)
    return home


# the member's goodbye goes out as its context ends, which blocks this one loop the
# coordinator shares for up to its linger: a 0.6 s silence then read as `lost` first
LEAVING = Timing(heartbeat=0.1, lost_after=2.0)


async def test_join_connect_leave_and_remove(tmp_path: Path, store: FlakyStore) -> None:
    listen = parse_listen(f"tcp://127.0.0.1:{_free_port()}")
    coordinator = Coordinator(store, "a", listen, machine_keys(_home(tmp_path, "a")), LEAVING)
    member_home = _home(tmp_path, "b")
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve)
        token = coordinator.new_token(None).token
        membership = await trio.to_thread.run_sync(join, member_home, "b", token)
        assert read_membership(member_home) == membership
        assert coordinator.peers["b"].state == "admitted"
        # the same name from another home (another key) is refused
        with pytest.raises(JoinRefused, match="already admitted with another key"):
            await trio.to_thread.run_sync(join, _home(tmp_path, "c"), "b", token)

        member = Member(member_home, membership, machine_keys(member_home), LEAVING)
        async with trio.open_nursery() as link:
            link.start_soon(member.serve)
            await _until(lambda: coordinator.peers["b"].state == "connected", "b connected")
            await _until(lambda: member.link == "connected", "b sees the link")
            link.cancel_scope.cancel()  # the member goes silent, without a goodbye
        await _until(lambda: coordinator.peers["b"].state == "lost", "b lost")

        member = Member(member_home, membership, machine_keys(member_home), LEAVING)
        async with trio.open_nursery() as link:
            link.start_soon(member.serve)
            await _until(lambda: coordinator.peers["b"].state == "connected", "b back")
            await _until(lambda: member.link == "connected", "b sees the link again")
            member.leaving = True
            link.cancel_scope.cancel()
        await _until(lambda: coordinator.peers["b"].state == "left", "b left")

        coordinator.revoke(_token_id(coordinator))
        with pytest.raises(JoinRefused, match="refused the token"):
            await trio.to_thread.run_sync(join, _home(tmp_path, "d"), "d", token)

        coordinator.remove("b")
        assert "b" not in coordinator.peers
        assert membership.name not in {m.name for m in coordinator.status().machines}
        nursery.cancel_scope.cancel()


def _token_id(coordinator: Coordinator) -> str:
    (token_id,) = coordinator.admission.values()
    return token_id


async def test_a_connected_link_outlives_a_reconnection_round(
    tmp_path: Path, store: FlakyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry helper's deadline bounds opening the link, never a connected session."""
    monkeypatch.setattr(member_module, "RECONNECT_ROUND", Backoff(attempts=5, deadline=0.5))
    listen = parse_listen(f"tcp://127.0.0.1:{_free_port()}")
    coordinator = Coordinator(store, "a", listen, machine_keys(_home(tmp_path, "a")), TIMING)
    member_home = _home(tmp_path, "b")
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve)
        token = coordinator.new_token(None).token
        membership = await trio.to_thread.run_sync(join, member_home, "b", token)
        member = Member(member_home, membership, machine_keys(member_home), TIMING)
        nursery.start_soon(member.serve)
        await _until(lambda: coordinator.peers["b"].state == "connected", "b connected")
        first_socket = coordinator.peers["b"].routing_id
        await trio.sleep(1.5)  # three rounds' deadlines
        assert member.link == "connected"
        assert coordinator.peers["b"].routing_id == first_socket, "the link was reopened"
        nursery.cancel_scope.cancel()


async def test_a_member_reconnected_by_its_socket_to_a_restarted_coordinator_reports_again(
    tmp_path: Path, store: FlakyStore
) -> None:
    """A coordinator back faster than the member notices (its socket reconnects by itself,
    no hello): the coordinator welcomes the member's heartbeat, and the member reports what
    it runs again (docs/cluster.md, "Loss and return")."""
    patient = Timing(heartbeat=0.1, lost_after=5.0)  # the member never finds it silent
    listen = parse_listen(f"tcp://127.0.0.1:{_free_port()}")
    keys = machine_keys(_home(tmp_path, "a"))
    member_home = _home(tmp_path, "b")
    welcomes: list[float] = []
    async with trio.open_nursery() as nursery:
        first = Coordinator(store, "a", listen, keys, patient)
        serving = trio.CancelScope()

        async def serve_first() -> None:
            with serving:
                await first.serve()

        nursery.start_soon(serve_first)
        await _until(lambda: first.owner is not None, "the coordinator listens")
        token = first.new_token(None).token
        membership = await trio.to_thread.run_sync(join, member_home, "b", token)
        member = Member(member_home, membership, machine_keys(member_home), patient)
        member.on_welcome = lambda: welcomes.append(trio.current_time())
        nursery.start_soon(member.serve)
        await _until(lambda: first.peers["b"].state == "connected" and len(welcomes) == 1,
                     "b connected and welcomed")  # fmt: skip
        serving.cancel()  # the coordinator's daemon is gone, its port closed
        await trio.sleep(0.2)
        again = Coordinator(store, "a", listen, keys, patient)
        await nursery.start(again.serve)
        assert again.peers["b"].state == "lost", "a restarted coordinator knew b's link"
        await _until(lambda: again.peers["b"].state == "connected", "b connected again")
        await _until(lambda: len(welcomes) == 2, "b welcomed again, and reporting")
        assert member.link == "connected"
        nursery.cancel_scope.cancel()
