"""Arrow payloads of fixed-width types (kind 7): every such type exact, slices and nulls,
types in turn, the array rebuilt over the frame without a copy, hostile frames refused."""

from __future__ import annotations

import decimal
import mmap
import random
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from node_sdk import NodeError, arrow_buffers, arrow_layout, wire

N = 37


def _with_nulls(arrow_type: Any) -> Any:
    """N values of `arrow_type`, every fifth one null."""
    mask = [i % 5 == 0 for i in range(N)]
    if pa.types.is_boolean(arrow_type):
        values: list[Any] = [i % 3 == 0 for i in range(N)]
    elif pa.types.is_fixed_size_binary(arrow_type):
        values = [bytes([i]) * arrow_type.byte_width for i in range(N)]
    elif pa.types.is_decimal(arrow_type):
        values = [decimal.Decimal(i) / 4 for i in range(N)]
    elif arrow_type == pa.month_day_nano_interval():
        values = [(i, i, i) for i in range(N)]
    elif pa.types.is_floating(arrow_type):
        return pa.array(np.arange(N).astype(arrow_type.to_pandas_dtype()), mask=np.array(mask))
    else:  # integers and temporal types: their integers, viewed as the type
        ints = pa.array([None if m else i for i, m in enumerate(mask)])
        return ints.cast(pa.int32() if arrow_type.bit_width == 32 else pa.int64()).view(
            arrow_type) if arrow_type.bit_width >= 32 else ints.cast(arrow_type)  # fmt: skip
    return pa.array([None if m else v for v, m in zip(values, mask, strict=True)], arrow_type)


TYPES = [
    pa.bool_(), pa.int8(), pa.uint8(), pa.int16(), pa.uint16(), pa.int32(), pa.uint32(),
    pa.int64(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.date32(),
    pa.date64(), pa.timestamp("s"), pa.timestamp("ns", "Europe/Paris"), pa.time32("ms"),
    pa.time64("ns"), pa.duration("us"), pa.decimal128(12, 2), pa.decimal256(40, 3),
    pa.binary(5), pa.month_day_nano_interval(),
]  # fmt: skip


def _round_trip(value: Any) -> Any:
    payload = wire.encode_payload(value)
    # a whole struct of byte-wide fields without nulls goes as the batch flow writes
    # (kind 4, tests/unit/test_sdk_arrow_batch.py)
    whole = all(
        field.buffers()[0] is None
        and field.buffers()[1].size == len(value) * field.type.bit_width // 8
        for field in (value.field(index) for index in range(value.type.num_fields))
    )
    written = arrow_layout.of(pa, value.type).batches is not None and not value.offset
    written = written and not value.null_count and whole and value.nbytes <= 16 << 10
    assert payload.kind == (wire.KIND_ARROW if written else wire.KIND_ARROW_BUFFERS), value
    assert len(payload.data) == payload.nbytes
    got = wire.decode_payload(payload.kind, memoryview(payload.data).toreadonly(), {})
    got.validate(full=True)
    assert got.type == value.type
    assert got.equals(value), (value, got)
    return got


@pytest.mark.parametrize("arrow_type", TYPES, ids=str)
def test_every_fixed_width_type_arrives_exact_sliced_with_and_without_nulls(
    arrow_type: Any,
) -> None:
    if arrow_type == pa.date64():  # whole days only
        full = pa.array([None if i % 5 == 0 else i * 86_400_000 for i in range(N)], pa.date64())
    else:
        full = _with_nulls(arrow_type)
    assert full.null_count
    for offset in range(12):  # offsets on and off byte boundaries, bitmaps or not
        for length in (0, 1, 7, 8, 9, 20):
            part = full.slice(offset, length)
            _round_trip(part)
            _round_trip(part.drop_null())  # no validity bitmap at all
    _round_trip(pa.array([], arrow_type))
    _round_trip(pa.nulls(3, arrow_type))


def test_a_slice_sends_only_what_it_holds() -> None:
    big = pa.array(np.arange(1_000_000, dtype=np.uint64))
    payload = wire.encode_payload(big.slice(500_000, 10))
    assert payload.nbytes < 1000


def test_the_array_is_built_over_the_frame_without_a_copy() -> None:
    frame = wire.encode_payload(pa.array(np.arange(1000, dtype=np.int32))).data
    got = wire.decode_payload(wire.KIND_ARROW_BUFFERS, memoryview(frame), {})
    start = pa.py_buffer(frame).address
    assert start <= got.buffers()[1].address < start + len(frame)
    assert not got.buffers()[1].is_mutable
    assert got.to_numpy()[999] == 999


def test_whole_arrays_arrive_exact_and_a_frame_off_their_layout_is_still_refused() -> None:
    """A whole array without nulls of a type Arrow need not validate is built without
    `_leaf_array` (`decode`): its frames arrive exact, over the frame; a frame of its
    table whose size is off, or a decimal past its precision, is still refused."""
    values = [pa.array(np.arange(n, n + 100, dtype=np.uint16)) for n in range(3)]
    frames = [bytes(wire.encode_payload(value).data) for value in values]
    for value, frame in zip(values, frames, strict=True):
        got = wire.decode_payload(wire.KIND_ARROW_BUFFERS, memoryview(frame), {})
        assert got.equals(value)
        assert got.type == pa.uint16()
        start = pa.py_buffer(frame).address  # over the frame, read-only, as the first was
        assert start <= got.buffers()[1].address < start + len(frame)
        assert not got.buffers()[1].is_mutable
    for off in (frames[0][:-8], frames[0] + bytes(8), frames[0][:-1]):
        with pytest.raises(NodeError, match="arrow buffers payload"):
            wire.decode_payload(wire.KIND_ARROW_BUFFERS, off, {})
    decimal_type = pa.decimal128(4, 2)
    good = bytes(wire.encode_payload(pa.array([decimal.Decimal("12.34")], decimal_type)).data)
    wire.decode_payload(wire.KIND_ARROW_BUFFERS, good, {})
    past = good.replace((1234).to_bytes(16, "little"), (10**7).to_bytes(16, "little"))
    with pytest.raises(NodeError, match="values Arrow refuses"):  # validated every time
        wire.decode_payload(wire.KIND_ARROW_BUFFERS, past, {})


def test_types_in_turn_on_one_output_each_arrive_as_their_own() -> None:
    values = [pa.array([1, 2, 3], pa.uint8()), pa.array([1.5, None]), pa.array([True, None]),
              pa.array([1, 2, 3], pa.uint8()).slice(1), pa.array(["a"]),
              pa.StructArray.from_arrays([pa.array([1])], names=["x"]),
              pa.array([7], pa.int64())]  # fmt: skip
    for _ in range(2):
        for value in values:
            payload = wire.encode_payload(value)
            got = wire.decode_payload(payload.kind, payload.data, {})
            assert got.type == value.type
            assert got.to_pylist() == value.to_pylist()


def test_strings_structs_dictionaries_and_extensions_keep_the_ipc_stream() -> None:
    others = [pa.array(["a", None]), pa.array([[1], []]), pa.array(["a", "a"]).dictionary_encode(),
              pa.StructArray.from_arrays([pa.array([1], pa.uint32()), pa.array(["a"])],
                                         names=["x", "s"]),
              pa.StructArray.from_arrays([pa.StructArray.from_arrays([pa.array([1])],
                                                                     names=["x"])], names=["in"]),
              pa.StructArray.from_arrays([], names=[]),
              pa.nulls(2),
              pa.ExtensionArray.from_storage(pa.uuid(), pa.array([b"0" * 16], pa.binary(16))),
              ]  # fmt: skip
    for value in others:
        assert wire.encode_payload(value).kind == wire.KIND_ARROW, value.type


def _struct(struct_nulls: bool) -> Any:
    """A struct of N rows over fields of several widths (a bool, a 3-byte binary), every
    field with nulls of its own, and nulls of the struct's own when asked."""
    types = (pa.uint32(), pa.bool_(), pa.float64(), pa.binary(3), pa.timestamp("ns"))
    fields = [_with_nulls(arrow_type) for arrow_type in types]
    mask = pa.array([i % 4 == 1 for i in range(N)]) if struct_nulls else None
    return pa.StructArray.from_arrays(fields, names=["u", "b", "f", "x", "t"], mask=mask)


def test_a_struct_of_fixed_width_fields_travels_as_its_buffers_exact_and_sliced() -> None:
    for struct_nulls in (False, True):
        full = _struct(struct_nulls)
        for offset in range(12):
            for length in (0, 1, 7, 8, 9, 20):
                part = full.slice(offset, length)
                if struct_nulls and offset % 8 and part.null_count:
                    # its bitmap would need a shift: the IPC stream carries it, exact
                    payload = wire.encode_payload(part)
                    assert payload.kind == wire.KIND_ARROW
                    assert wire.decode_payload(payload.kind, payload.data, {}).equals(part)
                else:
                    _round_trip(part)
    one = pa.StructArray.from_arrays([pa.array([7], pa.uint32()), pa.array([1], pa.uint32())],
                                     names=["x", "y"])  # fmt: skip
    assert _round_trip(one).to_pylist() == [{"x": 7, "y": 1}]


def test_a_struct_of_whole_or_sliced_fields_without_nulls_arrives_exact() -> None:
    big = pa.array(np.arange(100, dtype=np.int16))
    for first, second in [(big.slice(0, 9), big.slice(50, 9)), (big.slice(3, 9), big.slice(0, 9)),
                          (pa.array(np.arange(9.0)), pa.array(np.arange(9, dtype=np.uint8))),
                          (big.slice(91), pa.array([True] * 9))]:  # fmt: skip
        value = pa.StructArray.from_arrays([first, second], names=["a", "b"])
        _round_trip(value)
        for offset in range(4):
            _round_trip(value.slice(offset, 5))
        payload = wire.encode_payload(value)
        assert payload.nbytes < 600  # a field sliced from a larger array sends its part only


def test_a_struct_is_built_over_the_frame_without_a_copy() -> None:
    value = pa.StructArray.from_arrays([pa.array(np.arange(1000, dtype=np.int32)),
                                        pa.array(np.ones(1000))], names=["i", "f"])  # fmt: skip
    for sliced in (False, True):  # kind 4 (the batch flow writes), kind 7 (its buffers)
        payload = wire.encode_payload(value.slice(1) if sliced else value)
        assert payload.kind == (wire.KIND_ARROW_BUFFERS if sliced else wire.KIND_ARROW)
        _over_the_frame(payload.kind, payload.data)


def _over_the_frame(kind: int, frame: bytes) -> None:
    got = wire.decode_payload(kind, memoryview(frame), {})
    start = pa.py_buffer(frame).address
    for index in range(2):
        data = got.field(index).buffers()[1]
        assert start <= data.address < start + len(frame)
        assert not data.is_mutable
    assert got.field(0).to_numpy()[-1] == 999


def test_a_chunked_array_of_a_fixed_width_type_is_combined_and_sent_as_its_buffers() -> None:
    value = pa.chunked_array([[1, None], [3]])
    payload = wire.encode_payload(value)
    assert payload.kind == wire.KIND_ARROW_BUFFERS
    got = wire.decode_payload(payload.kind, payload.data, {})
    assert got.equals(value.combine_chunks())


def test_a_large_array_is_written_straight_into_a_segment() -> None:
    value = pa.array(np.arange(100_000, dtype=np.float64), mask=np.arange(100_000) % 7 == 0)
    payload = wire.encode_payload(value, deferred=True)
    assert type(payload.data) is arrow_buffers.BuffersBody
    segment = mmap.mmap(-1, 1 << 21)
    assert wire.write_payload(segment, payload.data, payload.nbytes) is segment
    view = memoryview(segment)[: payload.nbytes].toreadonly()
    got = wire.decode_payload(wire.KIND_ARROW_BUFFERS, view, {})
    assert got.equals(value)
    del got, view


def _good() -> bytes:
    return wire.encode_payload(pa.array([1, None, 3, 4], pa.int32())).data  # type: ignore[no-any-return]


def _table(frame: bytes, **changes: int) -> bytes:
    """`frame` with some fields of its table changed."""
    names = ("schema", "reserved", "length", "nulls", "offset", "validity", "data")
    fields = dict(zip(names, arrow_buffers.TABLE.unpack_from(frame), strict=True))
    fields.update(changes)
    return arrow_buffers.TABLE.pack(*fields.values()) + frame[arrow_buffers.TABLE.size :]


def _string_schema() -> bytes:
    schema = pa.schema([pa.field("v", pa.string())]).serialize().to_pybytes()
    return arrow_buffers.TABLE.pack(len(schema), 0, 0, 0, 0, arrow_buffers.ABSENT, 0) + schema


def _good_struct() -> bytes:
    fields = [pa.array([1, None, 3], pa.int32()), pa.array([1.5] * 3)]
    value = pa.StructArray.from_arrays(fields, names=["i", "f"],
                                       mask=pa.array([False, False, True]))  # fmt: skip
    return wire.encode_payload(value).data  # type: ignore[no-any-return]


def _field_table(frame: bytes, index: int, **changes: int) -> bytes:
    """`frame`, a struct's, with some fields of its `index`th field's table changed."""
    schema = arrow_buffers.TABLE.unpack_from(frame)[0]
    at = arrow_buffers.TABLE.size + schema + (-schema) % 8 + 8  # the struct's bitmap: 8
    for _ in range(index):  # past a field: its table, then its padded buffers
        nulls, _, validity, data = arrow_buffers.FIELD.unpack_from(frame, at)
        at += arrow_buffers.FIELD.size + (validity + (-validity) % 8 if nulls else 0)
        at += data + (-data) % 8
    names = ("nulls", "offset", "validity", "data")
    fields = dict(zip(names, arrow_buffers.FIELD.unpack_from(frame, at), strict=True))
    fields.update(changes)
    return frame[:at] + arrow_buffers.FIELD.pack(*fields.values()) + frame[at + 32 :]


HOSTILE = {
    "empty": b"",
    "short": b"\x00" * 20,
    "cut": _good()[:-8],
    "longer": _good() + b"\x00" * 8,
    "schema past the end": _table(_good(), schema=1 << 30),
    "not a schema": _table(_good(), schema=8)[: arrow_buffers.TABLE.size] + b"\xff" * 200,
    "a string type": _string_schema(),
    "negative length": _table(_good(), length=-1),
    "more nulls than values": _table(_good(), nulls=5),
    "offset of 8": _table(_good(), offset=8),
    "a huge length": _table(_good(), length=1 << 60),
    "data size off": _table(_good(), data=12),
    "bitmap without nulls": _table(_good(), nulls=0),
    "no bitmap with nulls": _table(_good(), validity=arrow_buffers.ABSENT),
    "a huge buffer": _table(_good(), data=(1 << 64) - 2),
    "fields for a plain type": _table(_good(), reserved=2),
    "struct: fields missing": _table(_good_struct(), reserved=0),
    "struct: a field more": _table(_good_struct(), reserved=3),
    "struct: cut in a field": _good_struct()[:-20],
    "struct: cut in its bitmap": _good_struct()[: arrow_buffers.TABLE.size + 8 * (
        (arrow_buffers.TABLE.unpack_from(_good_struct())[0] + 7) // 8)],
    "struct: data of its own": _table(_good_struct(), data=8),
    "struct: an offset": _table(_good_struct(), offset=1),
    "struct: bitmap without nulls": _table(_good_struct(), nulls=0),
    "struct: more nulls than values": _table(_good_struct(), nulls=4),
    "struct: negative length": _table(_good_struct(), length=-1),
    "struct: a longer length": _table(_good_struct(), length=9),
    "struct: fields longer than it": _table(_good_struct(), length=2),
    "struct field: data size off": _field_table(_good_struct(), 1, data=16),
    "struct field: a huge buffer": _field_table(_good_struct(), 0, data=(1 << 64) - 8),
    "struct field: no bitmap with nulls": _field_table(
        _good_struct(), 0, validity=arrow_buffers.ABSENT
    ),
    "struct field: offset of 9": _field_table(_good_struct(), 1, offset=9),
    "struct field: more nulls than values": _field_table(_good_struct(), 1, nulls=4),
}


@pytest.mark.parametrize("frame", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_frame_that_does_not_add_up_is_a_node_error(frame: bytes) -> None:
    for _ in range(2):  # and again: a refused schema is never cached
        with pytest.raises(NodeError, match="arrow buffers payload"):
            wire.decode_payload(wire.KIND_ARROW_BUFFERS, frame, {})


def test_two_columns_are_refused() -> None:
    schema = pa.schema([pa.field("a", pa.int8()), pa.field("b", pa.int8())])
    raw = schema.serialize().to_pybytes()
    frame = arrow_buffers.TABLE.pack(len(raw), 0, 0, 0, 0, arrow_buffers.ABSENT, 0) + raw
    with pytest.raises(NodeError, match="2 columns"):
        wire.decode_payload(wire.KIND_ARROW_BUFFERS, frame, {})


def test_the_layout_caches_are_bounded() -> None:
    for width in range(1, arrow_buffers.MAX_LAYOUTS * 2):
        value = pa.array([b"x" * width], type=pa.binary(width))
        assert _round_trip(value).to_pylist() == [b"x" * width]
    assert len(arrow_layout._KNOWN) <= arrow_layout.MAX_LAYOUTS
    assert len(arrow_buffers._READ) <= arrow_buffers.MAX_LAYOUTS


def test_a_senders_tables_per_length_are_bounded_and_each_its_own() -> None:
    layout = arrow_layout.of(pa, pa.uint32())
    for length in range(arrow_buffers.MAX_PREFIXES + 40):
        value = pa.array(np.arange(length, dtype=np.uint32))
        assert _round_trip(value).equals(value)
        assert len(layout.prefixes) <= arrow_buffers.MAX_PREFIXES
    again = pa.array(np.arange(3, dtype=np.uint32))  # a length made again after the clear
    assert _round_trip(again).equals(again)


def test_the_table_is_little_endian_and_fixed() -> None:
    frame = _good()
    schema_size = struct.unpack_from("<I", frame)[0]
    # 4 int32 values, 1 null, offset 0, a 1-byte bitmap, 16 data bytes
    assert arrow_buffers.TABLE.unpack_from(frame)[2:] == (4, 1, 0, 1, 16)
    data_at = arrow_buffers.TABLE.size + schema_size + (-schema_size) % 8 + 8
    assert frame[data_at : data_at + 16] == struct.pack("<4i", 1, 0, 3, 4)
    assert len(frame) == data_at + 16


def test_a_null_count_the_bitmap_contradicts_leaves_a_consistent_array() -> None:
    # each says 2 or 3 nulls where its bitmap has 1
    for lying in (_table(_good(), nulls=3), _table(_good_struct(), nulls=2),
                  _field_table(_good_struct(), 0, nulls=2)):  # fmt: skip
        got = wire.decode_payload(wire.KIND_ARROW_BUFFERS, lying, {})
        got.validate(full=True)  # Arrow counts the nulls from the bitmap itself
        assert got.null_count == 1


def test_mutated_frames_are_refused_or_arrive_as_arrays_arrow_validates() -> None:
    rng = random.Random(14)
    values = [pa.StructArray.from_arrays([pa.array([1, None, 3], pa.int32()), pa.array([1.5] * 3),
                                          pa.array([True, None, False])], names=["i", "f", "b"],
                                         mask=pa.array([False, False, True])),
              pa.StructArray.from_arrays([pa.array(np.arange(20, dtype=np.uint16)),
                                          pa.array(np.arange(20.0))], names=["a", "b"]).slice(3),
              pa.array([1, None, 3, 4], pa.int64()).slice(1),
              pa.array([True, False, None] * 4)]  # fmt: skip
    frames = [bytes(wire.encode_payload(value).data) for value in values]
    accepted = 0
    for _ in range(3000):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.6:  # a byte of a table (most of them early) or of anything
                at = rng.randrange(48) if rng.random() < 0.5 else rng.randrange(len(frame))
                frame[at] = rng.randrange(256)
            elif rng.random() < 0.5:  # an aligned 8-byte field set to a small number
                at = rng.randrange(len(frame) - 7) & ~7
                frame[at : at + 8] = struct.pack("<q", rng.randint(-2, 70))
            else:  # cut, or lengthened
                frame = frame[: rng.randrange(49, len(frame))] + bytes(rng.randrange(12))
        try:
            got = wire.decode_payload(wire.KIND_ARROW_BUFFERS, bytes(frame), {})
        except NodeError:
            continue
        got.validate(full=True)
        accepted += 1
    assert accepted  # some mutations leave a frame that adds up (a value byte changed)


def _renamed(value: Any, old: str, new: bytes) -> bytes:
    """`value`'s payload with the text `old` in its schema replaced by the bytes `new`."""
    payload = wire.encode_payload(value)
    frame = bytes(payload.data)
    assert frame.count(old.encode()) == 1
    return frame.replace(old.encode(), new)


def test_texts_that_are_not_utf8_and_values_arrow_refuses_are_node_errors() -> None:
    """A struct field name or a time zone that is not UTF-8, in kind 7 and kind 4, raised
    UnicodeDecodeError in the user's `to_pylist`; a decimal past its precision passed."""
    named = pa.array([{"\u00e9\u00e9": 1}], pa.struct([("\u00e9\u00e9", pa.int32())]))
    zoned = pa.array([0], pa.timestamp("s", tz="UTC"))
    zoned_strings = pa.StructArray.from_arrays([pa.array(["a"]), zoned], names=["s", "t"])
    for value, old in ((named, "\u00e9\u00e9"), (zoned, "UTC"), (zoned_strings, "UTC")):
        frame = _renamed(value, old, b"\xff\xfe\xff\xfe"[: len(old.encode())])
        kind = wire.encode_payload(value).kind
        with pytest.raises(NodeError, match="UnicodeDecodeError"):
            wire.decode_payload(kind, frame, {})
    decimal_type = pa.decimal128(4, 2)
    raw = pa.array([decimal.Decimal("12.34")], decimal_type)
    frame = bytes(wire.encode_payload(raw).data)
    frame = frame.replace((1234).to_bytes(16, "little"), (10**7).to_bytes(16, "little"))
    with pytest.raises(NodeError, match="values Arrow refuses"):
        wire.decode_payload(wire.KIND_ARROW_BUFFERS, frame, {})


def test_a_peers_padded_schema_message_is_read_but_not_kept() -> None:
    frame = _good()
    expected = wire.decode_payload(wire.KIND_ARROW_BUFFERS, frame, {})  # its schema cached
    schema_size = arrow_buffers.TABLE.unpack_from(frame)[0]
    at = arrow_buffers.TABLE.size
    length = struct.unpack_from("<i", frame, at + 4)[0]
    pad = 300 << 10  # past MAX_CACHED_SCHEMA: a peer holding the cache's memory
    schema = struct.pack("<Ii", 0xFFFFFFFF, length + pad) + \
        frame[at + 8 : at + 8 + length] + bytes(pad)  # fmt: skip
    rest = frame[at + schema_size + (-schema_size) % 8 :]
    padded = _table(frame, schema=len(schema))[:at] + schema + bytes(-len(schema) % 8) + rest
    before = dict(arrow_buffers._READ)
    for _ in range(3):
        assert wire.decode_payload(wire.KIND_ARROW_BUFFERS, padded, {}).equals(expected)
    assert dict(arrow_buffers._READ) == before
