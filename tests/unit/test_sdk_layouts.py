"""numpy payloads: the sender's header extra cached per array layout, the receiver's
layout parsed once, and both still exact (and hostile layouts refused) in any order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from node_sdk import NodeError, wire
from node_sdk.layouts import MAX_LAYOUTS, Layouts

VALUES = [
    np.arange(12, dtype=np.float64).reshape(3, 4),
    np.array(5, dtype=np.int16),  # 0-d
    np.zeros((0, 3), dtype=np.uint8),
    np.array([True, False]),
    np.array(["ab", "c"]),
    np.array([1, 2], dtype="datetime64[ns]"),  # no buffer format: the general encoder
    np.arange(24, dtype=">i4").reshape(2, 3, 4),  # big-endian
    np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2],  # not contiguous
    np.asfortranarray(np.arange(6).reshape(2, 3)),
    np.arange(12, dtype=np.float64).reshape(4, 3),  # the first one's dtype, another shape
]


def _through(layouts: Layouts, value: Any, metadata: dict[str, Any] | None) -> Any:
    body, nbytes, _, extra = layouts.encode(value, metadata)
    decoded = wire.decode_extra(extra)
    assert decoded["s"] == "a/out"
    assert decoded.get("m") == (metadata or None)
    data = bytes(memoryview(body).cast("B"))
    assert len(data) == nbytes
    return wire.decode_payload(wire.KIND_NUMPY, data, decoded)


def test_layouts_in_turn_on_one_output_arrive_exact() -> None:
    layouts = Layouts("a/out")
    for round_ in range(3):  # the second and third rounds take the cached layouts
        for i, value in enumerate(VALUES):
            metadata = {"i": i, "r": round_} if (i + round_) % 2 else None
            got = _through(layouts, value, metadata)
            assert got.dtype == value.dtype
            assert got.shape == value.shape
            np.testing.assert_array_equal(got, value)
            assert not got.flags.writeable


def test_a_writable_array_is_not_zero_copy_safe_and_a_read_only_one_is() -> None:
    layouts = Layouts("a/out")
    array = np.arange(4, dtype=np.int64)
    assert layouts.encode(array, None)[2] is False  # the user may change it after the send
    array.flags.writeable = False
    assert layouts.encode(array, None)[2] is True


def test_the_cache_is_bounded_and_refusals_are_not_cached() -> None:
    layouts = Layouts("a/out")
    for n in range(MAX_LAYOUTS * 2):
        _through(layouts, np.zeros(n, dtype=np.uint8), None)
    assert len(layouts._known) <= MAX_LAYOUTS
    for _ in range(2):
        with pytest.raises(NodeError, match="numpy array of dtype"):
            layouts.encode(np.zeros(2, dtype=object), None)


def test_bad_metadata_is_named_on_the_cached_path() -> None:
    layouts = Layouts("a/out")
    layouts.encode(np.zeros(2), None)
    with pytest.raises(NodeError, match="'k'"):
        layouts.encode(np.zeros(2), {"k": object()})


@pytest.mark.parametrize(
    ("extra", "data", "match"),
    [
        ({"dt": "<u8"}, b"", "valid dtype and shape"),
        ({"dt": "<u8", "sh": 3}, b"", "valid dtype and shape"),
        ({"dt": "<u8", "sh": [[1]]}, b"", "valid dtype and shape"),
        ({"dt": "nope", "sh": [1]}, b"", "bad dtype"),
        ({"dt": "|O", "sh": [1]}, bytes(8), "no raw layout"),
        ({"dt": "<u8", "sh": [-1]}, b"", "bad shape"),
        ({"dt": "<u8", "sh": ["2"]}, b"", "bad shape"),
        ({"dt": "<u8", "sh": [2]}, bytes(8), "8 bytes for 16"),
        ({"dt": "<u8", "sh": [1]}, bytes(7), "7 bytes for 8"),
        ({"dt": "<u4", "sh": [2**40, 2**40]}, bytes(8), "bytes for"),
        # numpy's own refusals, which raised ValueError out of next() and ended the node
        ({"dt": "<f8", "sh": [1] * 65}, bytes(8), "65 dimensions"),
        ({"dt": "<f8", "sh": [2**62, 0]}, b"", "a shape numpy refuses"),
        # an element past Unicode: reading it raised SystemError in the user's code
        ({"dt": "<U1", "sh": [2]}, b"\xff\xff\xff\xffA\x00\x00\x00", "past U\\+10FFFF"),
    ],
)
def test_hostile_layouts_are_node_errors(extra: dict[str, Any], data: bytes, match: str) -> None:
    for _ in range(2):  # and again, once a refusal could have been cached
        with pytest.raises(NodeError, match=match):
            wire.decode_payload(wire.KIND_NUMPY, data, extra)


def test_str_elements_within_unicode_arrive() -> None:
    for dtype in ("<U3", ">U3"):
        value = np.array(["a\u00e9\U0001f600", "xyz"], dtype=dtype)
        got = wire.decode_payload(wire.KIND_NUMPY, value.tobytes(), {"dt": dtype, "sh": [2]})
        assert got.tolist() == value.tolist()
