"""A recording's metadata is standard JSON: a NaN or an infinity is written as a string
named in `nonfinite`, and read back as the float, while a string "NaN" stays a string."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.model import recording
from node_sdk.wire import KIND_BYTES

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.sampled_from(["NaN", "Infinity", "-Infinity", "x"]))  # fmt: skip
METADATA = st.dictionaries(st.text(max_size=8), SCALARS | st.lists(SCALARS, max_size=4),
                           max_size=6)  # fmt: skip


def strict(text: bytes) -> Any:
    """JSON as every reader but Python's reads it: no NaN or Infinity tokens."""
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@given(METADATA)
def test_a_record_is_strict_json_and_its_metadata_comes_back(metadata: dict[str, Any]) -> None:
    text = recording.encode_message(KIND_BYTES, b"v", {}, seq=1, generation=1,
                                    metadata=metadata)  # fmt: skip
    strict(text)
    value, got, seq = recording.decode_message(text)
    assert (value, seq) == (b"v", 1)
    assert repr(got) == repr(metadata)  # repr: a NaN is not equal to itself


def test_the_places_are_named_and_a_sent_string_stays_one() -> None:
    meta = {"conf": math.nan, "range": [1.0, -math.inf], "label": "NaN"}
    record = strict(recording.encode_message(KIND_BYTES, b"", {}, seq=2, generation=1,
                                             metadata=meta))  # fmt: skip
    assert record["metadata"] == {"conf": "NaN", "range": [1.0, "-Infinity"], "label": "NaN"}
    assert record["nonfinite"] == [["conf"], ["range", 1]]
    assert "nonfinite" not in strict(recording.encode_message(
        KIND_BYTES, b"", {}, seq=3, generation=1, metadata={"a": 1.5}))  # fmt: skip


def test_an_older_recording_with_bare_tokens_still_reads() -> None:
    old = b'{"seq":1,"generation":1,"metadata":{"a":NaN},"kind":"none"}'
    assert math.isnan(recording.decode_message(old)[1]["a"])


@pytest.mark.parametrize(
    "nonfinite",
    [{"a": 1}, [["missing"]], [["label"]], [["range", 5]], [["range", "0"]], [[]],
     [["a", 0, 1]], [["conf"]] * 70_000, "conf"],
)  # fmt: skip
def test_a_hostile_nonfinite_list_is_refused(nonfinite: object) -> None:
    record = {"seq": 1, "generation": 1, "kind": "none", "nonfinite": nonfinite,
              "metadata": {"conf": "NaN", "label": "x", "range": [1.0]}}  # fmt: skip
    with pytest.raises(ValueError, match="nonfinite"):
        recording.decode_message(json.dumps(record).encode())
