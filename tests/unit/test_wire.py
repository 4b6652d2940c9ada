"""Data frames round-trip through `node_sdk.wire` and `node_sdk.frames`."""

from __future__ import annotations

import array
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from node_sdk import NodeError, wire
from node_sdk import frames as fr


def roundtrip(value: object, metadata: dict[str, Any] | None = None) -> fr.DataMessage:
    frames = fr.encode_data(
        value, source="a/out", generation=3, seq=7, timestamp_ns=123, metadata=metadata
    )
    # what zmq hands the receiver: one packed frame, or the header and the payload
    return fr.decode_data([bytes(memoryview(frame)) for frame in frames])


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\xffabc", bytearray(b"xyz"), memoryview(b"hello"), array.array("i", [1, 2])],
)
def test_bytes_like_arrives_as_a_read_only_memoryview(value: Any) -> None:
    got = roundtrip(value).value
    assert isinstance(got, memoryview)
    assert got.readonly
    assert got.tobytes() == bytes(memoryview(value).cast("B"))


def test_non_contiguous_memoryview_is_sent_as_its_bytes() -> None:
    view = memoryview(b"abcdef")[::2]
    assert roundtrip(view).value.tobytes() == b"ace"


@pytest.mark.parametrize("text", ["", "hello", "h\u00e9llo \u2713 \U0001f600"])
def test_str_roundtrips(text: str) -> None:
    got = roundtrip(text).value
    assert type(got) is str
    assert got == text


def test_none_roundtrips_with_an_empty_payload() -> None:
    (frame,) = fr.encode_data(None, source=None, generation=1, seq=1, timestamp_ns=0)
    assert len(frame) == wire.HEADER_SIZE  # packed, and nothing after the header
    assert roundtrip(None).value is None


def test_small_payloads_are_packed_and_large_ones_are_a_second_frame() -> None:
    small = fr.encode_data(b"x" * 100, source="a/out", generation=1, seq=1, timestamp_ns=0)
    large = fr.encode_data(
        bytes(wire.ZERO_COPY_MIN), source="a/out", generation=1, seq=1, timestamp_ns=0
    )
    assert len(small) == 1
    assert wire.unpack_header(small[0]).flags == wire.FLAG_PACKED
    assert len(large) == 2
    assert wire.unpack_header(large[0]).flags == wire.FLAG_LARGE
    assert bytes(roundtrip(bytes(wire.ZERO_COPY_MIN)).value) == bytes(wire.ZERO_COPY_MIN)


def test_a_packed_frame_shorter_than_its_extra_is_refused() -> None:
    (frame,) = fr.encode_data(b"", source="a/out", generation=1, seq=1, timestamp_ns=0)
    with pytest.raises(NodeError, match="extra of"):
        fr.decode_data([frame[:-3]])
    with pytest.raises(NodeError, match="frames"):
        fr.decode_data([frame, b"more"])


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.array(5, dtype=np.int16),  # 0-d
        np.zeros((0, 3), dtype=np.uint8),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex64),
        np.array(["ab", "c"]),
        np.array([1, 2], dtype="datetime64[ns]"),
        np.arange(24, dtype=">i4").reshape(2, 3, 4),  # big-endian
        np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2],  # not contiguous
        np.asfortranarray(np.arange(6).reshape(2, 3)),
        np.float32(2.5),  # a numpy scalar
    ],
)
def test_numpy_keeps_dtype_shape_and_values(value: Any) -> None:
    got = roundtrip(value).value
    expected = np.asarray(value)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert not got.flags.writeable


def test_numpy_receive_is_a_view_of_the_payload() -> None:
    frames = fr.encode_data(np.arange(4, dtype=np.int64), source=None, generation=1, seq=1,
                              timestamp_ns=0)  # fmt: skip
    (frame,) = frames
    payload = bytearray(frame[wire.HEADER_SIZE + wire.HEADER.unpack_from(frame)[-1] :])
    got = wire.decode_payload(wire.KIND_NUMPY, payload, {"dt": "<i8", "sh": [4]})
    payload[0] = 9
    assert got[0] == 9  # no copy was made


@pytest.mark.parametrize("dtype", [object, [("a", "i4"), ("b", "f8")]])
def test_numpy_without_a_raw_layout_is_refused(dtype: Any) -> None:
    with pytest.raises(NodeError, match="numpy array of dtype"):
        wire.encode_payload(np.zeros(2, dtype=dtype))


@pytest.mark.parametrize(
    "value",
    [
        pa.array([1, 2, None], type=pa.int32()),
        pa.array(["a", None, "\u2713"]),
        pa.array([[1, 2], [], None], type=pa.list_(pa.int64())),
        pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}]),
        pa.array([], type=pa.float64()),
        pa.array([b"\x00", b"ab"], type=pa.binary()),
        pa.chunked_array([[1, 2], [3]]),
    ],
)
def test_arrow_keeps_its_exact_type(value: Any) -> None:
    got = roundtrip(value).value
    assert isinstance(got, pa.Array)
    assert got.type == value.type
    assert got.to_pylist() == value.to_pylist()


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, 3, 2.5, object()])
def test_unsupported_types_are_named(value: object) -> None:
    with pytest.raises(NodeError, match=type(value).__qualname__):
        wire.encode_payload(value)


def test_metadata_and_source_travel_in_the_extra() -> None:
    meta = {"k": "v", "n": 3, "f": 1.5, "b": False, "none": None, "l": [1, "x", None, 2.5]}
    got = roundtrip(b"x", meta)
    assert got.metadata == meta
    assert got.source == "a/out"
    assert (got.header.generation, got.header.seq, got.header.timestamp_ns) == (3, 7, 123)


@pytest.mark.parametrize(
    "metadata",
    [
        {"seq": 1, "t": 10**18, "p": 0.5, "ok": True, "none": None, "s": 'h\u00e9 "q"'},
        {"l": [1, "x"], "t": (1, 2)},  # lists and tuples take the checked path
        {"nan": float("nan")},
    ],
)
def test_metadata_extra_is_what_encode_extra_makes(metadata: dict[str, Any]) -> None:
    fast = wire.decode_extra(wire.metadata_extra(wire.source_tail("a/out"), metadata))
    checked = wire.decode_extra(wire.encode_extra("a/out", wire.validate_metadata(metadata)))
    assert repr(fast) == repr(checked)  # repr: a NaN is not equal to itself
    assert fast["s"] == "a/out"


@pytest.mark.parametrize("metadata", [{"bad": {"nested": 1}}, {1: "x"}, {"b": b"x"}])
def test_metadata_extra_refuses_what_validation_refuses(metadata: Any) -> None:
    with pytest.raises(NodeError):
        wire.metadata_extra(wire.source_tail("a/out"), metadata)


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"bad": {"nested": 1}}, "'bad'"),
        ({"bad": [[1]]}, "'bad'"),
        ({"bad": b"bytes"}, "'bad'"),
        ({1: "x"}, "1"),
        (["not", "a", "dict"], "list"),
    ],
)
def test_bad_metadata_is_refused_naming_the_key(metadata: Any, named: str) -> None:
    with pytest.raises(NodeError, match=named):
        wire.validate_metadata(metadata)


def test_header_layout_is_32_fixed_bytes_then_extra() -> None:
    frame = wire.pack_header(wire.KIND_STR, 2, 99, 10**18, b'{"s":"a/b"}', flags=1)
    assert frame[:4] == b"FLW1"
    assert len(frame) == 32 + 11
    header = wire.unpack_header(frame)
    assert header == wire.Header(wire.KIND_STR, 1, 2, 99, 10**18, {"s": "a/b"})


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"short", "header of 5 bytes"),
        (b"XXXX" + bytes(28), "bad magic"),
        (wire.pack_header(1, 1, 1, 1, b"{}")[:-1], "extra of 1 bytes"),
        (wire.pack_header(1, 1, 1, 1, b"[]"), "not one JSON object"),
        (wire.pack_header(1, 1, 1, 1, b'{"s":"a"} {}'), "more than one JSON value"),
        (wire.pack_header(1, 1, 1, 1, b"{"), "not valid JSON"),
        (wire.pack_header(1, 1, 1, 1, b"\xff"), "not valid JSON"),
    ],
)
def test_bad_headers_are_refused(frame: bytes, problem: str) -> None:
    with pytest.raises(NodeError, match=problem):
        wire.unpack_header(frame)


def test_end_of_stream_carries_the_last_seq() -> None:
    got = fr.decode_data(fr.encode_eos("a/out", 2, 41))
    assert (got.header.kind, got.header.seq, got.source, got.value) == (wire.KIND_EOS, 41, "a/out",
                                                                        None)  # fmt: skip


def test_credit_frames() -> None:
    assert wire.unpack_credit(wire.pack_credit(5)) == 5
    assert wire.unpack_credit(b"junk") == 0
    assert wire.unpack_credit(b"XXXX\x01\x00\x00\x00") == 0


def test_large_private_payloads_may_be_sent_without_a_copy() -> None:
    assert wire.encode_payload(bytes(wire.ZERO_COPY_MIN)).zero_copy_safe
    assert not wire.encode_payload(bytearray(10)).zero_copy_safe  # the caller may reuse it
    assert not wire.encode_payload(np.zeros(4)).zero_copy_safe
    assert wire.encode_payload(np.zeros((4, 4))[:, ::2]).zero_copy_safe  # a private copy
