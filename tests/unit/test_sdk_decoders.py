"""Every decoder of the SDK is total: any bytes in give a value or NodeError, nothing else.

Random bytes, and structured garbage built to hit the classic holes: deep nesting (a
RecursionError in `json`), 1e400 (an infinity), 10**30 (an OverflowError further on),
bools where ints belong, wrong types and missing fields in otherwise valid messages.
"""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_sdk import channel, config, shm, wire
from node_sdk.errors import NodeError

TYPES = ["hello", "bye", "stats", "attach", "start", "stop", "upstream_done", "wire",
         "unwire", "add_input", "attached", "refused", "receiver_down", "nope"]  # fmt: skip
FIELDS = ["t", "run", "node", "generation", "pid", "dataflow", "input", "source", "output",
          "endpoint", "policy", "queue_size", "sources", "config", "error", "inputs",
          "outputs", "timer_ns", "restarts", "daemon", "descriptor", "shm_threshold",
          "daemon_grace_s", "run_name", "restarting", "everyone"]  # fmt: skip
ODD_NUMBERS = [b"1e400", b"-1e400", b"10" + b"0" * 30, b"NaN", b"Infinity", b"-0", b"1" * 5000]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(TYPES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5),
    ),
    max_leaves=30,
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """An object with a known `t` and garbage, missing or odd fields."""
    body: dict[str, Any] = {"t": draw(st.sampled_from(TYPES))}
    body.update(draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)))
    text = json.dumps(body).encode()
    if draw(st.booleans()) and len(body) > 1:  # an odd number literal in place of a value
        key = draw(st.sampled_from(sorted(k for k in body if k != "t")))
        odd = draw(st.sampled_from(ODD_NUMBERS))
        text = json.dumps({**body, key: "@@"}).encode().replace(b'"@@"', odd)
    return text


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=5000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    closed = draw(st.booleans())
    return opener * depth + b"1" + (closer * depth if closed else b"")


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    """A valid node configuration with one key replaced, removed or nested in garbage."""
    good: dict[str, Any] = {
        "run": "r1", "node": "n", "generation": 1, "daemon": "ipc:///x",
        "inputs": {"tick": {"timer_ns": 10}, "in": {"endpoint": "ipc:///y", "sources": ["a/b"]}},
        "outputs": {"out": [{"endpoint": "ipc:///z", "node": "m", "input": "i"}]},
    }  # fmt: skip
    key = draw(st.sampled_from(sorted(good)))
    if draw(st.booleans()):
        del good[key]
    else:
        good[key] = draw(json_values)
    return json.dumps(good).encode()


garbage = st.one_of(st.binary(max_size=300), messages(), nested(), configs())


def _total(decode: Any, data: Any) -> None:
    # the one error the layer may raise; anything else fails the test
    with contextlib.suppress(NodeError):
        decode(data)


@settings(max_examples=400, deadline=None)
@given(garbage)
def test_node_channel_decode_is_total(data: bytes) -> None:
    _total(channel.decode, data)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_node_config_parse_is_total(data: bytes) -> None:
    _total(config.parse, data)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    _total(config.parse, text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_node_config_from_decoded_json_is_total(value: Any) -> None:
    _total(lambda v: config.from_json(v, "config"), value)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """A data frame header: random, or well-formed fixed part with a garbage extra."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    extra = draw(garbage)
    declared = draw(st.sampled_from([len(extra), len(extra) + 1, 0, 2**32 - 1]))
    flags = draw(st.integers(min_value=0, max_value=255))
    fixed = wire.HEADER.pack(wire.MAGIC, draw(st.integers(0, 255)), flags, 0, 1, 1, 0, declared)
    return fixed + extra + draw(st.binary(max_size=20))


@settings(max_examples=400, deadline=None)
@given(headers())
def test_data_header_decode_is_total(frame: bytes) -> None:
    _total(wire.unpack_header, frame)
    _total(wire.unpack_header, memoryview(frame))


@st.composite
def descriptors(draw: st.DrawFn) -> Any:
    choice = draw(st.integers(min_value=0, max_value=2))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return draw(st.one_of(st.none(), st.integers(), st.text(max_size=10), json_values))
    values = (shm.DESCRIPTOR_MAGIC, draw(st.integers(0, 255)), draw(st.integers(0, 2**32 - 1)),
              draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**64 - 1)))  # fmt: skip
    return struct.pack("<4sBxxxIIQ", *values) + draw(st.binary(max_size=5000))


@settings(max_examples=300, deadline=None)
@given(descriptors())
def test_shm_descriptor_decode_is_total(frame: Any) -> None:
    _total(shm.parse_descriptor, frame)


def test_the_issue_11_frames_are_node_errors() -> None:
    """The frames that killed the daemon (issue 11, item 1), named one by one."""
    attach = '{"t":"attach","node":"v","dataflow":null,"pid":%s}'
    for frame in (b"[" * 1100 + b"]" * 1100, *(
        (attach % pid).encode() for pid in ("[1]", "1e400", str(10**30), '"abc"', "true", "0")
    )):  # fmt: skip
        with pytest.raises(NodeError) as caught:
            channel.decode(frame)
        assert "\n" not in str(caught.value)


def test_well_formed_messages_round_trip() -> None:
    cfg = config.parse(
        json.dumps(
            {
                "run": "r1",
                "node": "n",
                "generation": 2,
                "daemon": "ipc:///x",
                "inputs": {"t": {"timer_ns": 5}},
                "outputs": {"o": []},
                "restartable": True,
            }
        )
    )
    edge = config.Edge("ipc:///e", "m", "i", "backpressure", 4)
    spec = config.DataInput("x", "ipc:///x2", 3, "drop_oldest", ("a/b",))
    for message in (
        channel.Hello("r1", "n", 2, 4242), channel.Bye(), channel.Start(), channel.Stop(),
        channel.Stats({"i": {"received": 1}}, {"o": {"sent": 2, "dropped": 0}}),
        channel.Attach("n", None, 7), channel.Attach("n", "demo", 7),
        channel.UpstreamDone("in", "a/out"), channel.Wire("o", edge), channel.Unwire("o", "e"),
        channel.Stop(restart=True), channel.UpstreamDone("in", "a/out", generation=3),
        channel.AddInput(spec), channel.Attached(cfg), channel.Refused("no"),
        channel.ReceiverDown("m", True), channel.ReceiverDown("m"),
        channel.Stop(everyone=True), channel.Stop(restart=True, everyone=True),
    ):  # fmt: skip
        assert channel.decode(channel.encode(message)) == message
    assert config.parse(config.dumps(cfg)) == cfg
    assert cfg.restartable
