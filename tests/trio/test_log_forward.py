"""`flow logs -f` across machines in one process on a mock clock: a member's forwarding
(daemon/cluster/log_forward.py: the tail first, new lines in order, the bytes-per-second
bound, a log far behind skipped with one line, nothing read while the link is down,
rotation, a follow nobody renews ending) and the coordinator's copy it feeds
(daemon/cluster/remote_logs.py: appended, a lost machine one line, rotated, leases)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trio
import trio.testing

from daemon.cluster import log_forward as lf
from daemon.cluster import remote_logs as rl
from daemon.model.cluster_messages import LOG_TAIL_BYTES, Carry
from node_sdk import paths

RUN = str(uuid.uuid4())


class Link:
    """What the forwarder sends, and whether the link takes it."""

    def __init__(self) -> None:
        self.sent: list[Carry] = []
        self.up = True

    def send(self, carry: Carry) -> bool:
        if self.up:
            self.sent.append(carry)
        return self.up

    def text(self) -> str:
        return "".join(c.body for c in self.sent)


def forwarder(home: Path, link: Link) -> lf.LogForwarder:
    return lf.LogForwarder(home, "gpu", link.send, lambda: link.up)


def log_of(home: Path, node: str = "cam") -> Path:
    path = paths.node_log(home, RUN, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_lines(path: Path, first: int, count: int, width: int = 60) -> None:
    with path.open("a") as log:
        for n in range(first, first + count):
            log.write(f"line {n:08d} ".ljust(width, "x") + "\n")


def text_of(*files: Path) -> str:
    return "".join(f.read_text() for f in files)


def private(path: Path) -> bool:
    return path.stat().st_mode & 0o077 == 0


def numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


async def test_the_tail_comes_at_once_then_new_lines_in_order(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    write_lines(path, 0, 1000)  # 61 kB: more than the tail
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    tail = numbers("".join(fw.follows[(RUN, "cam")].pending))
    assert tail == list(range(tail[0], 1000)), "the tail is not whole lines up to the end"
    assert len(tail) * 61 <= LOG_TAIL_BYTES < (len(tail) + 1) * 61 + 61
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(0.5)
        write_lines(path, 1000, 50)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert numbers(link.text()) == list(range(tail[0], 1050))
    assert all(c.kind == "loglines" and c.ident == "cam" and c.run == RUN for c in link.sent)


async def test_forwarding_keeps_to_its_bytes_per_second(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    path.touch()
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    write_lines(path, 0, 8000, width=100)  # 800 kB at once, below the skip bound
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(4.0)
        sent_in_4s = len(link.text())
        for _ in range(4):
            fw.follow(RUN, "cam", "renew")  # the coordinator's renewals (else the lease ends)
            await trio.sleep(4.0)
        nursery.cancel_scope.cancel()
    # the bucket starts full (one second's worth), then refills at the rate
    assert sent_in_4s <= lf.FORWARD_BYTES_PER_S * 5 + lf.CHUNK_BYTES
    assert sent_in_4s >= lf.FORWARD_BYTES_PER_S * 3
    assert numbers(link.text()) == list(range(8000)), "a line lost or twice"


async def test_a_log_far_behind_skips_ahead_with_one_line_saying_how_much(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    path.touch()
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    write_lines(path, 0, 20_000, width=100)  # 2 MB: past BEHIND_MAX
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(3.0)
        nursery.cancel_scope.cancel()
    text = link.text()
    assert text.count("bytes of this log were not forwarded") == 1, text[:300]
    assert "the whole log is on machine gpu" in text
    got = numbers(text)
    assert got == list(range(got[0], got[-1] + 1))
    assert got[-1] == 19_999
    assert got[0] > 0


async def test_nothing_is_read_while_the_link_is_down_and_nothing_lost_after(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    write_lines(path, 0, 10)
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(0.5)
        link.up = False
        write_lines(path, 10, 10)
        await trio.sleep(2.0)
        fw.follow(RUN, "cam", "renew")  # still known: goes on where it stopped
        link.up = True
        write_lines(path, 20, 10)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert numbers(link.text()) == list(range(30))


async def test_a_rotated_log_is_read_to_its_end_then_the_new_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    write_lines(path, 0, 5)
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(0.5)
        write_lines(path, 5, 5)
        path.rename(path.with_name(path.name + ".1"))  # the keeper's rotation
        write_lines(path, 10, 5)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert numbers(link.text()) == list(range(15))


async def test_a_follow_nobody_renews_ends_and_a_late_renewal_says_lines_may_be_missing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    write_lines(path, 0, 5)
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(lf.LEASE_S + 1)
        assert not fw.follows
        write_lines(path, 5, 5)  # written while nobody followed
        fw.follow(RUN, "cam", "renew")
        write_lines(path, 10, 5)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    text = link.text()
    assert "log forwarding resumed: lines written meanwhile may be missing" in text
    assert numbers(text) == [*range(5), *range(10, 15)]


async def test_a_line_longer_than_a_chunk_is_left_out_and_counted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, link = log_of(tmp_path), Link()
    path.touch()
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    write_lines(path, 0, 2)
    with path.open("a") as log:
        log.write("y" * (lf.CHUNK_BYTES * 2 + 5) + "\n")
    write_lines(path, 2, 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fw.serve)
        await trio.sleep(2.0)
        nursery.cancel_scope.cancel()
    text = link.text()
    assert numbers(text) == [0, 1, 2, 3]
    assert f"{lf.CHUNK_BYTES * 2 + 6} bytes of this log were not forwarded" in text
    assert "yyyy" not in text


class Pair:
    """A coordinator's RemoteLogs and a member's LogForwarder joined without a link."""

    def __init__(self, home: Path) -> None:
        self.up = True
        self.remote = rl.RemoteLogs(home / "coordinator", self.to_member)
        self.member = lf.LogForwarder(home, "gpu", self.to_coordinator, lambda: self.up)

    def to_member(self, machine: str, carry: Carry) -> bool:
        if self.up and carry.kind == "follow":
            self.member.follow(carry.run, carry.ident, carry.body)
        return self.up

    def to_coordinator(self, carry: Carry) -> bool:
        if self.up:
            self.remote.on_carry("gpu", carry)
        return self.up


async def test_a_followed_copy_grows_says_when_its_machine_is_lost_and_rotates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rl, "COPY_MAX_BYTES", 3500)
    path, pair = log_of(tmp_path), Pair(tmp_path)
    write_lines(path, 0, 10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pair.member.serve)
        nursery.start_soon(pair.remote.serve)
        copy = Path(await pair.remote.copy(RUN, "gpu", "cam", follow=True))
        assert numbers(text_of(copy)) == list(range(10)), "the tail was not there at once"
        write_lines(path, 10, 40)
        await trio.sleep(1.0)
        pair.up = False
        pair.remote.on_state("gpu", "lost")
        pair.remote.on_state("gpu", "lost")  # said once
        write_lines(path, 50, 10)
        await trio.sleep(1.0)
        pair.up = True
        pair.remote.on_state("gpu", "connected")
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    rotated = copy.with_name("cam.log.1")
    text = text_of(rotated, copy)
    assert numbers(text) == list(range(60))
    assert text.count("machine gpu lost: the log of cam is not forwarded") == 1
    assert text.index("machine gpu lost") < text.index("line 00000050")
    assert "machine gpu back" in text
    assert private(copy)


async def test_a_follow_nobody_asks_for_again_ends_and_the_next_ask_fetches(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, pair = log_of(tmp_path), Pair(tmp_path)
    write_lines(path, 0, 3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pair.member.serve)
        nursery.start_soon(pair.remote.serve)
        await pair.remote.copy(RUN, "gpu", "cam", follow=True)
        await trio.sleep(rl.FOLLOW_LEASE_S / 2)
        await pair.remote.copy(RUN, "gpu", "cam", follow=True)  # asked again: goes on
        await trio.sleep(rl.FOLLOW_LEASE_S / 2 + 1)
        assert pair.remote.live
        await trio.sleep(rl.FOLLOW_LEASE_S)
        assert not pair.remote.live
        await trio.sleep(lf.LEASE_S)
        assert not pair.member.follows, "the member forwards what nobody follows"
        nursery.cancel_scope.cancel()


async def test_a_nodes_last_lines_go_at_its_exit_without_waiting_for_a_tick(
    tmp_path: Path,
) -> None:
    path, link = log_of(tmp_path), Link()
    write_lines(path, 0, 3)
    fw = forwarder(tmp_path, link)
    fw.follow(RUN, "cam", "start")
    write_lines(path, 3, 3)
    fw.flush(RUN, "cam")  # the keeper reported its exit: before that is relayed
    assert numbers(link.text()) == list(range(6))
    fw.follows[(RUN, "cam")].close()
