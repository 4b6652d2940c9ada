"""A whole struct of byte-wide fields without nulls travels as an Arrow IPC stream whose
batch message flow writes (kind 4, node_sdk/arrow_batch.py): exact for every byte-wide
type and length, read by Arrow's own stream reader, the message remembered per length
(bounded), other structs kept on kind 7, a tampered message refused or safe to read."""

from __future__ import annotations

import decimal
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

from node_sdk import NodeError, arrow_batch, arrow_ipc, arrow_layout, wire

FIELD_TYPES = [
    pa.int8(), pa.uint16(), pa.int32(), pa.uint64(), pa.float16(), pa.float64(), pa.date32(),
    pa.timestamp("ns", "Europe/Paris"), pa.time64("us"), pa.duration("ms"), pa.binary(3),
    pa.binary(5), pa.decimal128(12, 2), pa.decimal256(40, 3), pa.month_day_nano_interval(),
]  # fmt: skip
LENGTHS = (0, 1, 2, 7, 8, 9, 100, 1001)


def _values(arrow_type: Any, length: int) -> Any:
    """`length` values of `arrow_type`, no nulls, each a whole array of its own."""
    if pa.types.is_fixed_size_binary(arrow_type):
        return pa.array([bytes([i % 251]) * arrow_type.byte_width for i in range(length)],
                        arrow_type)  # fmt: skip
    if pa.types.is_decimal(arrow_type):
        return pa.array([decimal.Decimal(i) / 4 for i in range(length)], arrow_type)
    if arrow_type == pa.month_day_nano_interval():
        return pa.array([(i, -i, i * 7) for i in range(length)], arrow_type)
    if pa.types.is_floating(arrow_type):
        return pa.array(np.arange(length).astype(arrow_type.to_pandas_dtype()))
    ints = pa.array(np.arange(length, dtype=np.int64) % 120)
    if arrow_type.bit_width >= 32:
        ints = ints.cast(pa.int32() if arrow_type.bit_width == 32 else pa.int64())
        return ints.view(arrow_type)
    return ints.cast(arrow_type)


def _sent(value: Any) -> tuple[int, bytes]:
    payload = wire.encode_payload(value)
    assert len(payload.data) == payload.nbytes
    return payload.kind, payload.data


def test_every_byte_wide_field_type_and_length_arrives_exact() -> None:
    for length in LENGTHS:
        fields = [_values(arrow_type, length) for arrow_type in FIELD_TYPES]
        names = [f"f{index}" for index in range(len(fields))]
        for value in (pa.StructArray.from_arrays(fields, names=names),
                      pa.StructArray.from_arrays(fields[:1], names=names[:1])):  # fmt: skip
            kind, frame = _sent(value)
            small = value.nbytes <= arrow_batch.MAX_DATA_BYTES  # larger: kind 7, zero-copy
            assert kind == (wire.KIND_ARROW if small else wire.KIND_ARROW_BUFFERS), value.type
            got = wire.decode_payload(kind, memoryview(frame).toreadonly(), {})
            got.validate(full=True)
            assert got.type == value.type
            assert got.equals(value), (length, value.type)


def test_the_stream_is_one_arrows_own_reader_takes() -> None:
    value = pa.StructArray.from_arrays([_values(pa.uint32(), 5), _values(pa.float64(), 5)],
                                       names=["x", "y"])  # fmt: skip
    _, frame = _sent(value)
    reader = pa.ipc.open_stream(pa.py_buffer(frame))
    assert reader.read_next_batch().column(0).equals(value)
    with pytest.raises(StopIteration):  # the end marker follows the one batch
        reader.read_next_batch()
    ours = arrow_batch.batch_message(5, (32, 64))
    arrows = pa.RecordBatch.from_arrays([value], names=["v"]).serialize()
    # the same batch Arrow describes, in flow's own table layout: its message reads alike
    body = pa.ipc.read_message(arrows).body
    mine = pa.ipc.read_message(pa.py_buffer(ours + body.to_pybytes()))
    assert mine.type == "record batch"
    assert mine.body.size == body.size
    schema = pa.schema([pa.field("v", value.type)])
    assert pa.ipc.read_record_batch(mine, schema).column(0).equals(value)


def test_structs_with_nulls_slices_or_bool_fields_keep_their_buffers_kind() -> None:
    x, y = _values(pa.int32(), 10), _values(pa.int16(), 10)
    kept = [
        pa.StructArray.from_arrays([x, y], names=["x", "y"], mask=pa.array([True] + [False] * 9)),
        pa.StructArray.from_arrays([pa.array([None, *range(9)], pa.int32()), y],
                                   names=["x", "y"]),
        pa.StructArray.from_arrays([x, y], names=["x", "y"]).slice(2, 5),  # an offset
        pa.StructArray.from_arrays([x.slice(1, 5), y.slice(0, 5)], names=["x", "y"]),
        pa.StructArray.from_arrays([x, pa.array([True] * 10)], names=["x", "b"]),
    ]  # fmt: skip
    for value in kept:
        kind, frame = _sent(value)
        assert kind == wire.KIND_ARROW_BUFFERS, value
        assert wire.decode_payload(kind, frame, {}).equals(value)


def test_a_struct_past_the_bound_keeps_its_buffers_kind() -> None:
    rows = arrow_batch.MAX_DATA_BYTES // 8  # two uint32 fields: exactly the bound
    for length, kind in ((rows, wire.KIND_ARROW), (rows + 1, wire.KIND_ARROW_BUFFERS)):
        value = pa.StructArray.from_arrays([_values(pa.uint32(), length)] * 2, names=["x", "y"])
        sent, frame = _sent(value)
        assert sent == kind
        assert wire.decode_payload(sent, frame, {}).equals(value)


def test_the_message_is_remembered_per_length_and_bounded() -> None:
    value = pa.StructArray.from_arrays([_values(pa.uint8(), 40)], names=["a"])
    layout = arrow_layout.of(pa, value.type)
    assert layout.batches is not None
    for length in range(arrow_batch.MAX_LENGTHS * 3):
        part = pa.StructArray.from_arrays([_values(pa.uint8(), length)], names=["a"])
        kind, frame = _sent(part)
        assert wire.decode_payload(kind, frame, {}).equals(part)
        assert len(layout.batches) <= arrow_batch.MAX_LENGTHS
    first = layout.batches.get(arrow_batch.MAX_LENGTHS * 3 - 1)
    assert first is not None
    _sent(pa.StructArray.from_arrays([_values(pa.uint8(), arrow_batch.MAX_LENGTHS * 3 - 1)],
                                     names=["a"]))  # fmt: skip
    assert layout.batches.get(arrow_batch.MAX_LENGTHS * 3 - 1) is first  # made once


def test_a_tampered_batch_message_is_refused_or_safe_to_read() -> None:
    value = pa.StructArray.from_arrays([_values(pa.int64(), 3), _values(pa.binary(3), 3)],
                                       names=["i", "b"])  # fmt: skip
    _, frame = _sent(value)
    schema_size = 8 + struct.unpack_from("<i", frame, 4)[0]
    message_size = 8 + struct.unpack_from("<i", frame, schema_size + 4)[0]
    refused = 0
    # every 4-byte word of the batch message (counts, halves of lengths, null counts,
    # offsets and sizes, table offsets) set to values a hostile peer would send
    for at in range(schema_size + 8, schema_size + message_size, 4):
        for word in (0, 1, 2**31 - 1, 2**32 - 1, 4096):
            bad = bytearray(frame)
            struct.pack_into("<I", bad, at, word)
            try:
                got = wire.decode_payload(wire.KIND_ARROW, bytes(bad), {})
            except NodeError:
                refused += 1
                continue
            got.validate(full=True)
            got.to_pylist()  # readable to its last value: nothing out of bounds
    assert refused > 0


def _table(flat: bytes, at: int) -> dict[int, int]:
    """A flatbuffer table's present fields -> where each is (from the buffer's start)."""
    vtable = at - struct.unpack_from("<i", flat, at)[0]
    size = struct.unpack_from("<H", flat, vtable)[0]
    slots = struct.unpack_from(f"<{(size - 4) // 2}H", flat, vtable + 4)
    return {field: at + slot for field, slot in enumerate(slots) if slot}


def test_the_batch_message_places_its_vectors_as_arrows_writer_does() -> None:
    for fields in ((32, 64), (8,), tuple(range(8, 136, 8))):
        message = arrow_batch.batch_message(5, fields)
        assert len(message) % 8 == 0
        flat = message[8:]  # after the continuation marker and the length
        root = struct.unpack_from("<I", flat, 0)[0]
        header_at = _table(flat, root)[2]  # Message.header
        batch = header_at + struct.unpack_from("<I", flat, header_at)[0]
        slots = _table(flat, batch)
        assert struct.unpack_from("<q", flat, slots[0])[0] == 5  # RecordBatch.length
        assert slots[0] % 8 == 0
        for field, count in ((1, 1 + len(fields)), (2, 1 + 2 * len(fields))):
            vector = slots[field] + struct.unpack_from("<I", flat, slots[field])[0]
            assert struct.unpack_from("<I", flat, vector)[0] == count
            # FieldNode and Buffer are structs of two int64: 8-aligned, as Arrow writes them
            # (nanoarrow's verifier refuses them otherwise; pyarrow does not look)
            assert (vector + 4) % 8 == 0, (fields, field)


def test_a_peers_padded_schema_message_is_read_but_not_kept() -> None:
    value = pa.StructArray.from_arrays([_values(pa.uint32(), 3)], names=["x"])
    _, frame = _sent(value)
    length = struct.unpack_from("<i", frame, 4)[0]
    pad = 300 << 10  # past MAX_CACHED_SCHEMA: a peer holding the cache's memory
    padded = struct.pack("<Ii", 0xFFFFFFFF, length + pad) + frame[8 : 8 + length] + \
        bytes(pad) + frame[8 + length :]  # fmt: skip
    before = dict(arrow_ipc._READ)
    for _ in range(3):
        assert wire.decode_payload(wire.KIND_ARROW, padded, {}).equals(value)
    assert dict(arrow_ipc._READ) == before
