"""A data frame's extra read and written by msgspec where it agrees with the standard
library, by the standard library where not: what any sender wrote reads back as Python's
`json` reads it, NaN and infinities included, and what it refuses is refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_sdk import NodeError, extra_json, wire

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),  # past 64 bits: read back exactly
    st.floats(),  # NaN and infinities included
    st.text(max_size=20),
)
FLAT = st.dictionaries(st.text(max_size=10), SCALARS, max_size=6)
NESTED = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                          inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values (a NaN equals a NaN; 1 and 1.0 differ, as json reads them)."""
    return json.dumps(a) == json.dumps(b) and type(a) is type(b)


@given(FLAT)
def test_flat_metadata_reads_back_as_it_was_sent(metadata: dict[str, Any]) -> None:
    extra = wire.decode_extra(wire.metadata_extra(wire.source_tail("cam/frame"), metadata))
    assert extra["s"] == "cam/frame"
    assert same(extra["m"], metadata)


@given(NESTED)
def test_what_json_writes_reads_back_as_json_reads_it(value: Any) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert same(extra_json.loads(text), json.loads(text))


@given(FLAT)
def test_finite_flat_metadata_is_written_by_the_fast_encoder(metadata: dict[str, Any]) -> None:
    finite = all(type(v) is not float or math.isfinite(v) for v in metadata.values())
    assert extra_json.is_finite_flat(metadata) == finite
    if finite:
        assert same(json.loads(extra_json.dumps_finite(metadata)), metadata)


def test_the_standard_librarys_readings_are_kept() -> None:
    # msgspec refuses these; Python's json reads them, and so does every flow reader
    assert math.isinf(extra_json.loads(b"1e400"))
    assert math.isnan(extra_json.loads(b'{"a":NaN}')["a"])
    assert extra_json.loads(b"[-Infinity]") == [-math.inf]
    assert extra_json.loads(b"123456789012345678901234567890") == 123456789012345678901234567890


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"s":"a"} {}', "more than one JSON value"),
        (b'{"s":"a"', "not valid JSON"),
        (b"\xff{}", "not valid JSON"),
        (b'{"s":"a","m":{"k":"\\udc80"}}', "not valid Unicode"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # past the recursion limit
        (b"[1]", "not one JSON object"),
    ],
)
def test_a_hostile_extra_is_refused_with_a_reason(raw: bytes, problem: str) -> None:
    with pytest.raises(NodeError, match=problem):
        wire.decode_extra(raw)


@pytest.mark.parametrize("number", [19446744073709551617, -19446744073709551617, 2**64, -(2**63)])
def test_integers_past_64_bits_read_back_exactly(number: int) -> None:
    # msgspec 0.18 read the first two as 1000000000000000001 (its issue 701): >= 0.19 here
    extra = wire.decode_extra(wire.metadata_extra(wire.source_tail("a/out"), {"id": number}))
    assert extra["m"]["id"] == number


def test_surrounding_whitespace_reads_on_either_path() -> None:
    assert extra_json.loads(b' {"a":1}\n') == {"a": 1}
    assert math.isnan(extra_json.loads(b' {"a":NaN}\n')["a"])  # the standard library's path


def test_deep_nesting_under_a_raised_recursion_limit_is_refused_not_a_crash() -> None:
    # msgspec takes more C stack per level than json's scanner: many brackets go to the
    # latter, which stops at the limit before the C stack (a segfault) on an 8 MiB stack
    code = (
        "import sys; sys.setrecursionlimit(30_000)\n"
        "from node_sdk import NodeError, wire\n"
        "try:\n"
        "    wire.decode_extra(b'{\"m\":' + b'[' * 500_000 + b']' * 500_000 + b'}')\n"
        "except NodeError as exc:\n"
        "    print('refused', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(wire.__file__).parents[1])  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("refused"), done.stdout
