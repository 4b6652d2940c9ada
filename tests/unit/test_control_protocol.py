"""The control protocol's decoder is total, its converter strict, its registry complete."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.control.registry import HANDLERS
from daemon.model import protocol
from daemon.model import requests as rq
from daemon.model.errors import BadRequest
from daemon.model.protocol import Garbage, decode_request, encode_request

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity"]),  # raw tokens, spliced in below
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TOKENS = {'"1e400"': "1e400", '"-1e400"': "-1e400", '"NaN"': "NaN", '"Infinity"': "Infinity"}


def _frame(obj: Any) -> bytes:
    text = json.dumps(obj)
    for quoted, raw in TOKENS.items():
        text = text.replace(quoted, raw)
    return text.encode()


def _decode(data: bytes) -> None:
    """Anything but a request, Garbage or BadRequest fails the test."""
    with contextlib.suppress(Garbage, BadRequest):
        decode_request(data, hooks=True)


@given(st.binary(max_size=2048))
def test_random_bytes_give_a_request_or_the_layers_error(data: bytes) -> None:
    _decode(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(rq.REQUESTS)), JSON, st.sampled_from([1, 2, True, "1", None]))
def test_every_request_type_with_a_garbage_body(type_: str, body: Any, version: Any) -> None:
    _decode(_frame({"v": version, "id": "x", "type": type_, "body": body}))


@given(
    st.sampled_from(sorted(rq.REQUESTS)),
    st.dictionaries(
        st.sampled_from(["run", "node", "grace", "force", "path", "text", "env", "name",
                         "timeout", "sample_s", "lease", "topic", "endpoint", "all", "extra"]),
        JSON,
        max_size=6,
    ),
)  # fmt: skip
def test_known_fields_with_garbage_values(type_: str, body: dict[str, Any]) -> None:
    _decode(_frame({"v": 1, "id": "x", "type": type_, "body": body}))


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 2200 + b"]" * 2200,
        b"{" * 1100,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"v":1,"id":"x","type":"stop","body":{"run":"' + b"[" * 3000 + b'"}}',
        b"9" * 5000,
        b'{"v":1,"id":"x","type":"ping","body":{}, "v": 1e400}',
        b'{"v": NaN, "id": "x", "type": "ping"}',
        b"\xff\xfe",
        b"",
    ],
)
def test_structured_garbage(data: bytes) -> None:
    _decode(data)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    deep_text = "[" * 3000
    _, frame = encode_request(rq.Stop(run=deep_text[:4000]))
    with pytest.raises(BadRequest, match="field 'run'"):
        decode_request(frame.replace(b'"' + b"[" * 3000, b'"' + b"[" * 3000 + b"x" * 2000))
    assert decode_request(frame).body == rq.Stop(run=deep_text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"run": "r", "grace": -1}, "field 'grace': expected a non-negative number"),
        ({"run": "r", "grace": "5"}, "field 'grace': expected a non-negative number"),
        ({"run": "r", "grace": True}, "field 'grace': expected a non-negative number"),
        ({"run": [1]}, "field 'run': expected a string"),
        ({"run": "r", "force": 1}, "field 'force': expected true or false"),
        ({}, "field 'run': required field missing"),
        ({"run": "r", "colour": "red"}, "body: unknown field 'colour'"),
        ({"run": "r" * 5000}, "field 'run': longer than 4096 characters"),
    ],
)
def test_a_bad_field_is_named_in_a_stop(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(json.dumps({"v": 1, "id": "x", "type": "stop", "body": body}).encode())
    assert message in str(info.value)
    assert info.value.request_id == "x"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("token", "field"), [("1e400", "grace"), (str(10**30), "grace")])
def test_numbers_out_of_range_are_refused_by_field(token: str, field: str) -> None:
    frame = f'{{"v":1,"id":"x","type":"stop","body":{{"run":"r","grace":{token}}}}}'.encode()
    with pytest.raises(BadRequest, match=f"field '{field}': number .* out of range"):
        decode_request(frame)


def test_a_join_tokens_ttl_may_be_the_30_days_its_help_says() -> None:
    def token(ttl: float) -> bytes:
        return json.dumps({"v": 1, "id": "x", "type": "cluster_token", "body": {"ttl": ttl}}
                          ).encode()  # fmt: skip

    assert decode_request(token(30 * 86400)).body == rq.ClusterToken(ttl=rq.Seconds(2592000.0))
    with pytest.raises(BadRequest, match=r"field 'ttl': expected at most 2\.6784e\+06 seconds "
                       r"\(31 days\)"):  # fmt: skip
        decode_request(token(32 * 86400))


@pytest.mark.parametrize("env", [{"A=B": "x"}, {"": "x"}, {"A": "x\u0000y"}, {"A": "\ud800"}])
def test_a_start_env_the_os_cannot_pass_is_refused(env: dict[str, str]) -> None:
    body = {"path": "/x.yml", "text": "nodes: []", "env": env}
    frame = json.dumps({"v": 1, "id": "x", "type": "start", "body": body}).encode()
    with pytest.raises(BadRequest, match="cannot be passed in the environment"):
        decode_request(frame)


def test_hooks_only_when_enabled() -> None:
    frame = json.dumps({"v": 1, "id": "x", "type": "_inject_fatal", "body": {}}).encode()
    with pytest.raises(BadRequest, match="unknown request type"):
        decode_request(frame)
    assert isinstance(decode_request(frame, hooks=True).body, rq.InjectFatal)


def test_round_trip_of_every_request_type() -> None:
    samples: dict[type[Any], Any] = {
        str: "x", bool: True, rq.Seconds: 1.5, rq.Name: "n", rq.YamlText: "nodes: []",
        rq.Env: {"A": "1"},
    }  # fmt: skip
    for cls in rq.REQUESTS.values():
        fields = {
            a.name: samples[a.type if a.type in samples else str]
            for a in attrs.fields(cls)
            if a.default is attrs.NOTHING
        }
        request = cls(**fields)
        request_id, frame = encode_request(request)
        decoded = decode_request(frame, hooks=True)
        assert (decoded.id, decoded.body) == (request_id, request)


def test_one_handler_per_request_type() -> None:
    assert set(HANDLERS) == set(rq.REQUESTS.values())
    assert len(rq.REQUESTS) == 37  # 36 and the test hook
    assert all(cls.DOC for cls in rq.REQUESTS.values())


def test_replies_decode_strictly() -> None:
    good = json.dumps({"v": 1, "id": "x", "ok": True, "body": {"lease": "l", "lease_s": 5}})
    reply = protocol.decode_reply(good.encode(), rq.TopicSubscribe.REPLY)
    assert reply == rq.TopicSubscribe.REPLY(lease="l", lease_s=5.0)
    with pytest.raises(protocol.MalformedReply):
        protocol.decode_reply(b"[" * 5000, rq.Ping.REPLY)


def test_public_names_are_pinned() -> None:
    assert sorted(protocol.__all__) == sorted([
        "MAX_DEPTH", "MAX_REQUEST_BYTES", "SOCKET_MAX_MSG_BYTES", "VERSION", "Decoded",
        "ErrorReply", "Garbage", "MalformedReply", "decode_reply", "decode_request",
        "encode_error", "encode_reply", "encode_request", "new_request_id", "reply_id",
    ])  # fmt: skip


REPLY_CLASSES = sorted({cls.REPLY for cls in rq.REQUESTS.values()}, key=lambda c: c.__name__)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    st.sampled_from(REPLY_CLASSES),
    st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda ok, body, ident: _frame({"v": 1, "id": ident, "ok": ok, "body": body}),
            st.sampled_from([True, False, None, 1]),
            JSON,
            st.one_of(st.none(), st.text(max_size=8), st.integers()),
        ),
        st.builds(lambda error: _frame({"v": 1, "id": "x", "ok": False, "error": error}), JSON),
        st.just(b"[" * 2200 + b"]" * 2200),
    ),
)
def test_the_clients_reply_decoders_are_total(cls: Any, data: bytes) -> None:
    """The CLI's side: any bytes give a reply, the daemon's error, or MalformedReply."""
    with contextlib.suppress(protocol.MalformedReply):
        protocol.reply_id(data)
    with contextlib.suppress(protocol.MalformedReply):
        protocol.decode_reply(data, cls)
