"""Arrow payloads: the schema message made once per type and parsed once per schema, the
payload written straight into its segment, every type exact in any order, garbage refused.
Fixed-width arrays travel as their own buffers (kind 7, tests/unit/test_sdk_arrow_buffers.py),
the others as an Arrow IPC stream (kind 4)."""

from __future__ import annotations

import mmap
import random
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import zmq

from daemon.keeper.shm_cleanup import remove_run_segments
from node_sdk import NodeError, arrow_buffers, arrow_ipc, arrow_layout, wire
from node_sdk.config import Edge, NodeConfig
from node_sdk.send import Sender

VALUES = [
    pa.array(np.arange(100, dtype=np.uint8)),
    pa.StructArray.from_arrays([pa.array(np.arange(5, dtype=np.uint32)),
                                pa.array(np.ones(5, dtype=np.uint32))], names=["x", "y"]),
    pa.array(["a", None, "\u2713"]),
    pa.array(np.arange(70_000, dtype=np.uint8)),  # a shared-memory size
    pa.chunked_array([[1, 2], [3]]),
    pa.array([], type=pa.float64()),
    pa.array(["x" * 100] * 300),  # above SERIALIZE_AT_ONCE: measured, then written once
]  # fmt: skip
# the values sent as their own buffers (kind 7): fixed-width types, a chunked one combined
FIXED_WIDTH = {0, 3, 4, 5}
WRITTEN = {1}  # a struct of byte-wide fields: kind 4, its batch message written by flow


def _plain(value: Any) -> Any:
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


@pytest.mark.parametrize("into_segment", [False, True])
def test_arrow_types_in_turn_arrive_exact(into_segment: bool) -> None:
    segment = mmap.mmap(-1, 1 << 20)
    for _ in range(3):  # later rounds take the cached schema on both ends
        for index, value in enumerate(VALUES):
            payload = wire.encode_payload(value, deferred=True)
            fixed = index in FIXED_WIDTH
            assert payload.kind == (wire.KIND_ARROW_BUFFERS if fixed else wire.KIND_ARROW)
            if not fixed and index not in WRITTEN:
                # a small batch is made once, at encode; a large one where it goes
                small = _plain(value).get_total_buffer_size() <= arrow_ipc.SERIALIZE_AT_ONCE
                assert (payload.data.serialized is not None) == small
            if into_segment:
                sent = wire.write_payload(segment, payload.data, payload.nbytes)
                assert sent is segment  # the stream exists only there: no copy before it
                data = memoryview(segment)[: payload.nbytes].toreadonly()
            else:
                data = payload.data.join()
                assert len(data) == payload.nbytes
            got = wire.decode_payload(payload.kind, data, {})
            assert got.type == value.type
            assert got.to_pylist() == _plain(value).to_pylist()
            del got, data


def test_the_stream_is_arrows_own_format() -> None:
    value = pa.StructArray.from_arrays([pa.array(["a", "b"]), pa.array([1, 2])], names=["s", "i"])
    mine = wire.encode_payload(value).data
    reader = pa.ipc.open_stream(pa.py_buffer(mine))  # any Arrow reader takes it
    assert reader.read_next_batch().column(0).to_pylist() == value.to_pylist()
    sink = pa.BufferOutputStream()  # and flow takes a stream any Arrow writer made
    with pa.ipc.new_stream(sink, pa.schema([pa.field("v", value.type)])) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays([value], names=["v"]))
    assert wire.decode_payload(wire.KIND_ARROW, sink.getvalue(), {}).equals(value)


def _stream(value: Any) -> bytes:
    """The Arrow IPC stream of `value` (what kind 4 sends), whatever its type."""
    return arrow_ipc.encode(pa, value, arrow_layout.of(pa, value.type)).join()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff" * 7,
        b"garbage that is not arrow at all",
        _stream(VALUES[0])[:-40],  # a batch cut short
        _stream(VALUES[0])[:200] + b"\x00" * 40,
        b"\xff\xff\xff\xff\x08\x00\x00\x00" + b"\x00" * 16,  # a schema message of nothing
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",  # a huge metadata length
    ],
)
def test_garbage_is_a_node_error(data: bytes) -> None:
    for _ in range(2):  # and again: a refused schema is never cached
        with pytest.raises(NodeError, match="arrow payload"):
            wire.decode_payload(wire.KIND_ARROW, data, {})


def test_a_stream_of_two_columns_is_refused() -> None:
    batch = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "b"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with pytest.raises(NodeError, match="2 columns"):
        wire.decode_payload(wire.KIND_ARROW, sink.getvalue(), {})


def test_the_schema_caches_are_bounded() -> None:
    for width in range(1, arrow_ipc.MAX_SCHEMAS * 2):
        value = pa.array([b"x" * width], type=pa.binary(width))
        got = wire.decode_payload(wire.KIND_ARROW, _stream(value), {})
        assert got.type == value.type
    assert len(arrow_layout._KNOWN) <= arrow_layout.MAX_LAYOUTS
    assert len(arrow_ipc._READ) <= arrow_ipc.MAX_SCHEMAS


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (pa.array(np.arange(100_000, dtype=np.uint8)), arrow_buffers.BuffersBody),
        (pa.array(["x" * 100] * 1000), arrow_ipc.ArrowBody),
    ],
)
def test_a_failed_write_into_a_segment_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: Any, body: type[Any]
) -> None:
    run = str(uuid.uuid4())
    cfg = NodeConfig(
        run=run, run_name=None, node="a", generation=1, restarts=0,
        daemon=f"ipc://{tmp_path}/nodes", descriptor=None, config={}, inputs={},
        outputs={"out": (Edge(f"ipc://{tmp_path}/in", "b", "in", "drop_oldest"),)},
    )  # fmt: skip
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sender = Sender(context, cfg, send_timeout_s=1.0)
        sender.connect()

        def broken(self: Any, target: Any) -> None:
            raise NodeError("arrow payload: the write failed")

        with monkeypatch.context() as patch:
            patch.setattr(body, "write_into", broken)
            with pytest.raises(NodeError, match="write failed"):
                sender.send_output("out", value)
        pool = sender._pool
        assert len(pool._segments) == 1
        assert pool.in_flight == 0  # back in the pool, not lost to it
        sender.send_output("out", value)  # and taken again
        assert len(pool._segments) == 1
        sender.close()
    finally:
        context.destroy(linger=0)
        remove_run_segments(run)


def test_mutated_streams_are_refused_or_arrive_whole_and_safe_to_read() -> None:
    """A peer's stream whose offsets point past its data, or whose names are not UTF-8,
    crashed the reader's process (a segfault in `to_pylist`) or raised other errors than
    NodeError out of `next()`: each is now a NodeError, or an array Arrow validates."""
    rng = random.Random(4)
    values = [pa.array(["a", None, "ccc", "dddd"]), pa.array([[1, 2], None, [3]]),
              pa.StructArray.from_arrays([pa.array(["x", "yy"]), pa.array([1, 2])],
                                         names=["s", "i"]),
              pa.array(["a", "b", "a"]).dictionary_encode()]  # fmt: skip
    frames = [bytes(wire.encode_payload(value).data) for value in values]
    accepted = 0
    for _ in range(3000):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(frame))
            if rng.random() < 0.5:
                frame[at] = rng.randrange(256)
            else:  # an offset, a length or an index set to a small number
                at &= ~3
                frame[at : at + 4] = struct.pack("<i", rng.randint(-5, 300))
        try:
            got = wire.decode_payload(wire.KIND_ARROW, bytes(frame), {})
        except NodeError:
            continue
        got.validate(full=True)
        str(got)  # every value read: an offset out of bounds crashed here
        accepted += 1
    assert accepted


DICTIONARIES = [
    pa.array(["a", "b", "a", None]).dictionary_encode(),
    pa.StructArray.from_arrays([pa.array(["x", "y"]).dictionary_encode(), pa.array([1, 2])],
                               names=["d", "i"]),
    pa.array([["a", "b"], ["a"]], pa.list_(pa.dictionary(pa.int8(), pa.string()))),
    pa.array([f"label {i % 7}" for i in range(20_000)]).dictionary_encode(),  # a segment's size
]


@pytest.mark.parametrize("into_segment", [False, True])
def test_dictionary_arrays_arrive_with_their_dictionaries(into_segment: bool) -> None:
    """A dictionary travels in its own batch before the record batch: a payload of the record
    batch alone reached every receiver as `Dictionary field not found` (refused, lost)."""
    segment = mmap.mmap(-1, 1 << 20)
    for _ in range(2):  # the second round takes the cached schema on both ends
        for value in DICTIONARIES:
            payload = wire.encode_payload(value, deferred=True)
            assert payload.kind == wire.KIND_ARROW
            if into_segment:
                wire.write_payload(segment, payload.data, payload.nbytes)
                data: Any = memoryview(segment)[: payload.nbytes].toreadonly()
            else:
                data = payload.data.join()
                assert len(data) == payload.nbytes
            got = wire.decode_payload(payload.kind, data, {})
            assert got.type == value.type
            assert got.equals(value)
            del got, data
