"""The one depth scan of every channel's decoder: exact on valid JSON, linear on hostile text."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from daemon.model.keeper_messages import KeeperMessageError
from daemon.model.keeper_messages import decode as decode_keeper
from daemon.model.protocol import Garbage, decode_request
from node_sdk import channel
from node_sdk.errors import NodeError
from node_sdk.strictjson import depth

# A string that never closes, made of escaped quotes: a backtracking string pattern rescans
# it from every quote (about an hour for a megabyte). Linear, it takes milliseconds; the
# bound below only has to tell those apart on a loaded machine.
HOSTILE = b"[" * 20 + b'"' + b'\\"' * ((1 << 20) // 2 - 20)
LINEAR_BOUND_S = 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "]]]}}}", "b": "[[["}', 1),
        (b'["x\\"[[", [[]]]', 3),
        (b'[["unterminated [[[', 2),
    ],
)
def test_depth_leaves_strings_out(text: bytes, expected: int) -> None:
    assert depth(text) == expected


@pytest.mark.parametrize(
    ("decoder", "error"),
    [
        (decode_request, Garbage),
        (decode_keeper, KeeperMessageError),
        (channel.decode, NodeError),
    ],
    ids=["control", "keeper", "node-channel"],
)
def test_a_megabyte_of_escaped_quotes_is_refused_at_once(
    decoder: Callable[[bytes], object], error: type[Exception]
) -> None:
    started = time.monotonic()
    with pytest.raises(error):
        decoder(HOSTILE)
    assert depth(HOSTILE) == 20
    assert time.monotonic() - started < LINEAR_BOUND_S
