"""The shared-memory pool and leases in one process: reuse only after release, the cap,
fan-out without copies, and removal of a run's segments by prefix."""

from __future__ import annotations

import gc
import os
import select
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from daemon.keeper.shm_cleanup import remove_run_segments
from node_sdk import leases, shm
from node_sdk.errors import NodeError
from node_sdk.leases import Releases, ShmReader
from node_sdk.wire import KIND_BYTES, KIND_NUMPY, decode_payload

BOUND_S = 10.0  # a safety bound on waits for release notices, never an assertion on speed


@pytest.fixture
def run_id() -> Iterator[str]:
    run = str(uuid.uuid4())
    yield run
    left = [n for n in os.listdir(shm.SHM_DIR) if n.startswith(shm.run_prefix(run))]
    remove_run_segments(run)
    assert left == [], "segments left behind"


@pytest.fixture
def reader() -> ShmReader:
    """The receiving side, with its own release queue (a node owns one each)."""
    return ShmReader(Releases())


@pytest.fixture
def pool(run_id: str, tmp_path: Path, reader: ShmReader) -> Iterator[shm.Pool]:
    ctx: zmq.Context[Any] = zmq.Context()
    made = shm.Pool(ctx, run_id, "t1g1", f"ipc://{tmp_path}/r", threshold=64 * 1024)
    yield made
    gc.collect()
    reader.releases.flush()
    made.close(wait_s=1.0)
    reader.releases.close()
    ctx.term()


def send_to(
    pool: shm.Pool, data: bytes, receivers: list[str], kind: int = KIND_BYTES
) -> list[bytes]:
    """One message to each of `receivers` (node ids): a descriptor each, as send.py does."""
    segment = pool.acquire(len(data))
    assert segment is not None
    segment.map[: len(data)] = data
    tokens = [pool.hold(segment, receiver) for receiver in receivers]
    pool.publish(segment)
    return [pool.descriptor(segment, kind, len(data), token) for token in tokens]


def send(pool: shm.Pool, data: bytes, kind: int = KIND_BYTES) -> bytes:
    return send_to(pool, data, ["r"], kind)[0]


def receive(reader: ShmReader, descriptor: bytes, extra: dict[str, Any] | None = None) -> Any:
    return reader.open_payload(descriptor, extra or {}, decode_payload)


def wait_free(pool: shm.Pool, reader: ShmReader, held: int = 0) -> None:
    deadline = time.monotonic() + BOUND_S
    while pool.in_flight > held:
        assert time.monotonic() < deadline, "release notices never arrived"
        reader.releases.flush()
        pool.poll_releases()
        time.sleep(0.005)


def test_view_is_read_only_and_zero_copy(pool: shm.Pool, reader: ShmReader) -> None:
    data = os.urandom(100_000)
    view = receive(reader, send(pool, data))
    assert isinstance(view, memoryview)
    assert view.readonly
    assert bytes(view) == data
    with pytest.raises(TypeError):
        view[0] = 1
    assert pool.in_flight == 1
    del view
    wait_free(pool, reader)


def test_no_reuse_before_release(pool: shm.Pool, reader: ShmReader) -> None:
    first = receive(reader, send(pool, b"\xab" * 70_000))
    others = []
    for i in range(20):
        view = receive(reader, send(pool, bytes([i]) * 70_000))
        assert bytes(view[:1]) == bytes([i])
        others.append(view)
    assert bytes(first) == b"\xab" * 70_000  # intact while held
    del others, view
    gc.collect()
    wait_free(pool, reader, held=1)  # the first is still held: its segment stays out of the pool
    assert bytes(first) == b"\xab" * 70_000
    for i in range(20):
        again = receive(reader, send(pool, bytes([i]) * 70_000))  # reuses released segments only
        del again
    assert bytes(first) == b"\xab" * 70_000
    del first
    wait_free(pool, reader)


def test_released_segments_are_reused(pool: shm.Pool, reader: ShmReader) -> None:
    for i in range(50):
        view = receive(reader, send(pool, bytes([i]) * 100_000))
        assert view[0] == i
        del view
        wait_free(pool, reader)
    assert len(pool._segments) == 1


def test_fan_out_returns_the_segment_after_every_receiver(
    pool: shm.Pool, reader: ShmReader
) -> None:
    descriptors = send_to(pool, b"x" * 80_000, ["a", "b", "c"])
    views = [receive(reader, descriptor) for descriptor in descriptors]
    assert all(bytes(v) == b"x" * 80_000 for v in views)
    views.pop()
    views.pop()
    reader.releases.flush()
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # give the notices a chance to (wrongly) free it
        pool.poll_releases()
    assert pool.in_flight == 1
    views.clear()
    wait_free(pool, reader)


def test_dropped_descriptor_is_released(pool: shm.Pool, reader: ShmReader) -> None:
    reader.discard(send(pool, b"y" * 70_000))
    wait_free(pool, reader)


def test_numpy_view_keeps_the_lease(pool: shm.Pool, reader: ShmReader) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(20_000, dtype=np.float64).reshape(100, 200)
    descriptor = send(pool, array.tobytes(), kind=KIND_NUMPY)
    got = receive(reader, descriptor, {"dt": "<f8", "sh": [100, 200]})
    assert got.shape == (100, 200)
    assert not got.flags.writeable
    assert (got == array).all()
    column = got[:, 3]  # a derived view still holds the segment
    del got
    gc.collect()
    reader.releases.flush()
    pool.poll_releases()
    assert pool.in_flight == 1
    assert column[5] == array[5, 3]
    del column
    wait_free(pool, reader)


def test_arrow_array_keeps_the_lease(pool: shm.Pool, reader: ShmReader) -> None:
    pa = pytest.importorskip("pyarrow")
    from node_sdk.wire import encode_payload

    payload = encode_payload(pa.array(list(range(20_000)), pa.int64()))
    data = bytes(memoryview(payload.data))
    got = receive(reader, send(pool, data, kind=payload.kind))
    assert got.to_pylist() == list(range(20_000))
    del got
    wait_free(pool, reader)


def test_an_arrow_ipc_stream_is_copied_out_and_its_segment_goes_back_at_once(
    pool: shm.Pool, reader: ShmReader
) -> None:
    """Strings have offsets: validated, then read by the user, they must not be the sender's
    to rewrite in between (a string offset moved 1 GiB past its data crashed the node)."""
    pa = pytest.importorskip("pyarrow")
    from node_sdk.wire import encode_payload

    value = pa.array([f"name {i}" for i in range(20_000)])
    payload = encode_payload(value)
    got = receive(reader, send(pool, bytes(memoryview(payload.data)), kind=payload.kind))
    wait_free(pool, reader)  # while the array is still held: it is no view of the segment
    segment = pool._segments[0]
    segment.map[:] = b"\xff" * len(segment.map)  # the sender writes its segment again
    assert got.equals(value)
    assert str(got)  # every value read, offsets intact


def test_cap_falls_back_to_inline(run_id: str, tmp_path: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    small = shm.Pool(ctx, run_id, "t2g1", f"ipc://{tmp_path}/r2", 64 * 1024, cap_bytes=256 * 1024)
    try:
        held = [small.acquire(100_000) for _ in range(3)]
        assert held[0] is not None
        assert held[1] is not None
        assert held[2] is None  # 2 x 128 KiB fill the cap: the sender sends inline
        assert small.fallbacks == 1
        for segment in held[:2]:
            assert segment is not None
            small.give_back(segment)
        assert small.acquire(100_000) is not None
    finally:
        small.close(wait_s=0)
        ctx.term()


def test_remove_run_segments_by_prefix(run_id: str, tmp_path: Path) -> None:
    other = str(uuid.uuid4())
    mine = [Path(shm.SHM_DIR) / f"{shm.run_prefix(run_id)}abcg1-{i}" for i in range(3)]
    theirs = Path(shm.SHM_DIR) / f"{shm.run_prefix(other)}abcg1-0"
    for path in [*mine, theirs]:
        path.write_bytes(b"z")
    try:
        assert remove_run_segments(run_id) == 3
        assert not any(p.exists() for p in mine)
        assert theirs.exists()
        assert remove_run_segments(run_id) == 0
    finally:
        theirs.unlink()


def test_notices_go_in_one_frame_per_batch_and_free_every_segment(
    pool: shm.Pool, reader: ShmReader
) -> None:
    views = [receive(reader, send(pool, bytes([i]) * 70_000)) for i in range(10)]
    assert pool.in_flight == 10
    views.clear()  # ten leases die: their notices wait in the queue (fewer than FLUSH_AT)
    assert len(reader.releases.queue) == 10
    pull = pool._pull
    assert pull is not None
    reader.releases.flush()
    deadline = time.monotonic() + BOUND_S
    while not pull.poll(10):
        assert time.monotonic() < deadline, "no release frame arrived"
    frame = pull.recv()
    assert len(frame) == 10 * shm.RELEASE.size  # the ten notices side by side, one frame
    # the same frame, read by the pool this time, frees all ten
    with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as push:
        push.connect(pool.endpoint)
        push.send(frame)
        push.send(b"\x00" * 7)  # not a whole number of notices: ignored
        deadline = time.monotonic() + BOUND_S
        while pool.in_flight:
            assert time.monotonic() < deadline, "the batch never freed the segments"
            pool.poll_releases()
            time.sleep(0.005)
        push.close(linger=1000)
    assert len(pool._segments) == 10


def test_large_payloads_are_released_without_waiting_for_a_batch(
    pool: shm.Pool, reader: ShmReader
) -> None:
    from node_sdk.leases import FLUSH_BYTES

    view = receive(reader, send(pool, b"z" * FLUSH_BYTES))
    del view  # one notice of FLUSH_BYTES: sent at once, not held for 31 more
    assert not reader.releases.queue
    wait_free(pool, reader)


def test_past_its_working_set_a_burst_waits_for_a_release_instead_of_growing(
    pool: shm.Pool, reader: ShmReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 70_000
    limit = _working_set(pool, size)
    assert limit == shm.MAX_WORKING_SET  # a small class: as many as the bytes allow
    held = [receive(reader, send(pool, b"w" * size)) for _ in range(limit)]
    assert len(pool._segments) == limit  # up to it, the pool grows at once
    size_class = pool._segments[0].size
    # a wait as long as a loaded machine may need, so only the release can end it
    monkeypatch.setattr(shm, "MAX_WAIT_S", BOUND_S)
    pool._cost[size_class] = BOUND_S
    waits: list[float] = []
    let_go = [True]  # whether the next wait has a receiver let a view go
    real_select = select.select

    def release_while_waiting(*args: Any) -> Any:
        """The sender waits: a receiver lets one view go now."""
        if let_go[0]:
            let_go[0] = False
            held.pop(0)  # its lease dies: a notice is queued
            reader.releases.flush()
        waits.append(args[3])
        return real_select(*args)

    monkeypatch.setattr(shm, "select", types.SimpleNamespace(select=release_while_waiting))
    segment = pool.acquire(size)
    assert segment is not None
    assert waits, "the sender never waited for a release"
    assert len(pool._segments) == limit  # the released one was taken: no new one
    token = pool.hold(segment, "r")
    pool.publish(segment)
    held.append(receive(reader, pool.descriptor(segment, KIND_BYTES, size, token)))
    # every segment held and no release coming: after the wait (short here), one is made
    pool._cost[size_class] = 0.001
    waits.clear()
    segment = pool.acquire(size)
    assert segment is not None
    assert waits  # it waited first
    assert len(pool._segments) == limit + 1
    pool.give_back(segment)
    held.clear()
    wait_free(pool, reader)


def test_a_bursts_excess_is_removed_once_idle_and_its_receivers_unmap_it(
    pool: shm.Pool, reader: ShmReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 70_000
    limit = _working_set(pool, size)
    monkeypatch.setattr(shm, "MAX_WAIT_S", 0.001)  # no release comes while all are held
    monkeypatch.setattr(shm, "TRIM_IDLE_S", 3600.0)  # not idle yet, however slow this runs
    monkeypatch.setattr(leases, "SWEEP_S", 3600.0)  # one look, however slow this runs
    held = [receive(reader, send(pool, bytes([i]) * size)) for i in range(limit + 4)]
    assert len(pool._segments) == limit + 4  # a lagging receiver: the class grew past its set
    assert len(reader._maps) == limit + 4
    held.clear()
    wait_free(pool, reader)

    def cycle() -> None:
        """One message sent, read and let go, as a steady stream does."""
        view = receive(reader, send(pool, b"s" * size))
        assert bytes(view[:1]) == b"s"
        del view
        wait_free(pool, reader)

    def files() -> int:
        return sum(1 for name in os.listdir(shm.SHM_DIR) if name.startswith(pool.prefix))

    for _ in range(8):
        cycle()
    assert len(pool._segments) == limit + 4 == files()  # not left out long enough yet
    reader.sweep()
    assert len(reader._maps) == limit + 4  # every segment is still there: all kept
    monkeypatch.setattr(shm, "TRIM_IDLE_S", 0.0)  # every free one past the set is idle now
    for _ in range(limit):
        cycle()
    assert len(pool._segments) == limit == files()  # one removed per acquire, down to the set
    # the receiver, about to wait, forgets the mappings of the removed ones (their memory)
    reader.sweep()
    assert len(reader._maps) == limit + 4  # looked at once per SWEEP_S, not at every wait
    reader._next_sweep = 0.0
    reader.sweep()
    assert sorted(reader._maps) == sorted(segment.tail for segment in pool._segments.values())
    cycle()  # what is left is still read through the cache
    assert len(reader._maps) == limit


def test_after_a_pause_the_next_burst_keeps_the_segments_it_needs(
    pool: shm.Pool, reader: ShmReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 70_000
    limit = _working_set(pool, size)
    monkeypatch.setattr(shm, "MAX_WAIT_S", 0.001)
    for _ in range(2):  # two bursts past the working set, a pause of 10 s between them
        held = [receive(reader, send(pool, b"b" * size)) for _ in range(limit + 4)]
        held.clear()
        wait_free(pool, reader)
        for segment in pool._segments.values():
            segment.freed -= 10.0
    assert pool._numbers == limit + 4  # the second burst made none again: none was removed


def test_a_large_class_takes_the_segment_let_go_of_last(pool: shm.Pool, reader: ShmReader) -> None:
    size = 300_000  # a 512 KiB class: its working set passes EAGER_BYTES
    limit = _working_set(pool, size)
    assert limit * shm._size_class(size, pool._threshold) > shm.EAGER_BYTES
    held = [receive(reader, send(pool, b"w" * size)) for _ in range(limit)]
    held.clear()
    wait_free(pool, reader)
    assert pool._pull is not None
    used = []
    for _ in range(5):
        descriptor = send(pool, b"x" * size)
        used.append(shm.parse_descriptor(descriptor)[1])
        receive(reader, descriptor)  # read and let go at once
        reader.releases.flush()
        assert pool._pull.poll(int(BOUND_S * 1000), zmq.POLLIN)  # its notice came, unread
    assert len(set(used)) == 1  # each send took the one just let go of, still in the caches
    wait_free(pool, reader)


def _working_set(pool: shm.Pool, nbytes: int) -> int:
    return shm.working_set(shm._size_class(nbytes, pool._threshold))


def test_the_working_set_holds_more_small_segments_than_large_ones() -> None:
    assert shm.working_set(64 << 10) == shm.MAX_WORKING_SET
    assert shm.working_set(1 << 20) == shm.MAX_WORKING_SET
    assert shm.working_set(2 << 20) == shm.WORKING_SET
    assert shm.working_set(64 << 20) == shm.WORKING_SET  # a 40 MB payload's class


def test_a_new_generation_removes_its_nodes_segments_older_than_the_last(run_id: str) -> None:
    tag = shm.sender_tag("cam", 4)
    stem = f"{shm.run_prefix(run_id)}{tag[: tag.rindex('g') + 1]}"
    other = f"{shm.run_prefix(run_id)}{shm.sender_tag('lidar', 1)}-0"
    names = [f"{stem}{gen}-{n}" for gen in (1, 2, 3, 4) for n in (0, 1)] + [other]
    names.append(f"{stem}12-0")  # generation 12 of the same node: not older, not "1"
    for name in names:
        with open(os.path.join(shm.SHM_DIR, name), "wb"):
            pass
    assert shm.remove_older_generations(run_id, tag, 4) == 4  # generations 1 and 2
    left = sorted(n for n in os.listdir(shm.SHM_DIR) if n.startswith(shm.run_prefix(run_id)))
    assert left == sorted([f"{stem}3-0", f"{stem}3-1", f"{stem}4-0", f"{stem}4-1", other,
                           f"{stem}12-0"])  # fmt: skip
    remove_run_segments(run_id)


def test_a_receiver_gone_for_good_gives_back_what_it_alone_held(
    pool: shm.Pool, reader: ShmReader
) -> None:
    """`forget`: the segments only that receiver held are free again, the ones past the
    working set unlinked; a segment another receiver still holds stays out of the pool."""
    limit = _working_set(pool, 70_000)
    count = limit + 6
    for i in range(count):  # never read by "dead": it holds each of them
        send_to(pool, bytes([i]) * 70_000, ["dead"])
    shared = send_to(pool, b"s" * 70_000, ["dead", "live"])
    view = receive(reader, shared[1])  # "live" reads its copy, and holds it
    names = [s.name for s in pool._segments.values()]
    assert pool.in_flight == count + 1
    assert pool.forget("dead") == count
    assert pool.in_flight == 1  # the one "live" holds
    assert len(pool._segments) == limit + 1
    on_disk = [n for n in names if os.path.exists(os.path.join(shm.SHM_DIR, n))]
    assert len(on_disk) == limit + 1  # the rest unlinked at once
    late = send_to(pool, b"l" * 70_000, ["live"])[0]  # a freed segment is reused, intact view
    assert bytes(view) == b"s" * 70_000
    del view
    reader.discard(late)
    wait_free(pool, reader)


def test_forged_release_notices_do_not_free_a_held_segment(
    pool: shm.Pool, reader: ShmReader, tmp_path: Path
) -> None:
    """Any process of this user can reach a sender's release socket: with counted use tokens
    a few hundred forged notices freed a segment a receiver still read, and the sender wrote
    the next message over it. Tokens are random: guessing one is 1 in 2^32 per notice."""
    [descriptor] = send_to(pool, b"\x01" * (100 * 1024), ["r"])
    got = receive(reader, descriptor)
    ctx: Any = zmq.Context()
    forger = ctx.socket(zmq.PUSH)
    try:
        forger.connect(pool.endpoint)
        half = shm.MAX_NOTICES // 2  # two segment numbers a frame
        for start in range(0, 8192, half):  # every token a counter would have handed out
            uses = range(start, start + half)
            forger.send(b"".join(shm.RELEASE.pack(n, use) for n in range(2) for use in uses))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            pool.poll_releases()
            time.sleep(0.01)
        assert pool.in_flight == 1  # still held: the receiver's view is intact
        assert bytes(got[:4]) == b"\x01" * 4
    finally:
        forger.close(linger=0)
        ctx.term()
    del got
    wait_free(pool, reader)


def test_names_another_process_took_are_skipped_not_retried(
    pool: shm.Pool, reader: ShmReader, caplog: pytest.LogCaptureFixture
) -> None:
    # another user's process made the names the pool would make next (it can guess them)
    taken = [Path(shm.SHM_DIR) / f"{pool.prefix}{n}" for n in range(3)]
    for path in taken:
        path.write_bytes(b"theirs")
    try:
        data = os.urandom(100_000)
        view = receive(reader, send(pool, data))
        assert bytes(view) == data  # through a segment of its own, past the taken names
        assert not caplog.records  # nothing to say: a taken name is only skipped
        del view
        wait_free(pool, reader)
    finally:
        for path in taken:
            path.unlink()


@pytest.mark.parametrize("planted", ["link", "other user"])
def test_a_receiver_maps_no_segment_another_user_planted(
    pool: shm.Pool, reader: ShmReader, tmp_path: Path, planted: str
) -> None:
    descriptor = send(pool, os.urandom(100_000))
    segment = Path(shm.SHM_DIR) / next(s.name for s in pool._segments.values())
    bait = tmp_path / "bait"
    bait.write_bytes(bytes(100_000))
    segment.unlink()  # its sender gone: the name is free for anyone to make again
    if planted == "link":
        segment.symlink_to(bait)
    else:
        segment.write_bytes(bytes(100_000))
        os.chown(segment, 1001, 1001)
    try:
        with pytest.raises(NodeError, match=r"cannot be opened|belongs to uid 1001"):
            receive(reader, descriptor)
    finally:
        segment.unlink()
