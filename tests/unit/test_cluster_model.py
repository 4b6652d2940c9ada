"""The cluster's pure parts: tokens, listen addresses, names, and the link's total decoder."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.model import cluster_messages as msg
from daemon.model.cluster import (
    ClusterConfigError,
    JoinToken,
    check_machine_name,
    fingerprint,
    parse_listen,
    parse_token,
)

KEY = "0" * 20 + "abcdefghij" + ".-:+=^!/*?"


@pytest.mark.parametrize("plain", [False, True])
def test_a_token_round_trips(plain: bool) -> None:
    token = JoinToken("tcp://127.0.0.1:7890", KEY, KEY[::-1], plain)
    assert parse_token(token.text()) == token
    assert "\n" not in token.text()
    assert " " not in token.text()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "flow-join.",
        "flow-join.!!!",
        "flow-join.e30",  # {}
        "flow-join." + "A" * 2000,
        JoinToken("tcp://h:1", KEY, KEY).text()[:-4],  # cut short
        JoinToken("udp://h:1", KEY, KEY).text(),
        JoinToken("tcp://h:1", "short", KEY).text(),
        JoinToken("tcp://h:1", KEY, KEY).text() + "\nsecond line",
        JoinToken("tcp://10.0.0.1:1", KEY, KEY, plain=True).text(),  # plain off loopback
    ],
)
def test_a_damaged_token_is_one_line(text: str) -> None:
    with pytest.raises(ClusterConfigError, match=r"^join token: ") as caught:
        parse_token(text)
    assert "\n" not in str(caught.value)


@given(st.text(max_size=300))
def test_parse_token_is_total(text: str) -> None:
    with contextlib.suppress(ClusterConfigError):
        parse_token("flow-join." + text)


@pytest.mark.parametrize(
    ("text", "plain", "endpoint"),
    [
        ("tcp://127.0.0.1:7890", True, "tcp://127.0.0.1:7890"),
        ("tcp://localhost:7890", True, "tcp://localhost:7890"),
        ("tcp://[::1]:7890", True, "tcp://[::1]:7890"),
        ("tcp://10.0.0.1:7890", False, "tcp://10.0.0.1:7890"),
        ("tcp://*:7890", False, "tcp://*:7890"),
    ],
)
def test_listen_addresses(text: str, plain: bool, endpoint: str) -> None:
    assert parse_listen(text, plain=plain).endpoint == endpoint


@pytest.mark.parametrize("text", ["tcp://10.0.0.1:7890", "tcp://*:7890", "tcp://host:7890"])
def test_plain_tcp_off_loopback_is_refused(text: str) -> None:
    with pytest.raises(ClusterConfigError, match="non-loopback"):
        parse_listen(text, plain=True)


@pytest.mark.parametrize("text", ["ipc:///tmp/x", "tcp://h", "tcp://h:0", "tcp://h:70000", "x"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ClusterConfigError, match="--listen"):
        parse_listen(text)


def test_machine_names_and_fingerprints() -> None:
    assert check_machine_name("gpu-1.lab") == "gpu-1.lab"
    for bad in ("", "-x", "a/b", "x" * 65):
        with pytest.raises(ClusterConfigError):
            check_machine_name(bad)
    assert fingerprint(KEY) == fingerprint(KEY)
    assert fingerprint(KEY).startswith("sha256:")
    assert len(fingerprint(KEY)) == len("sha256:") + 16


MESSAGES = [
    msg.Join("b", KEY), msg.Join("b", KEY, admission=KEY), msg.Hello("b"), msg.Hello("b", KEY),
    msg.Bye(), msg.Admitted("b", "a"), msg.Refused("why"), msg.Welcome("a"), msg.Leave("removed"),
    msg.Beat(), msg.Beat(KEY), msg.ProbeListen("p1", "10.0.0.2", KEY, "33"),
    msg.ProbeSend("p1", "tcp://10.0.0.2:7001", KEY, "8388608", "10"), msg.ProbeReport("p1", "7001"),
    msg.ProbeReport("p1", small_s="0.000300", error="8MiB message not acknowledged"),
]  # fmt: skip


@pytest.mark.parametrize("message", MESSAGES)
def test_link_messages_round_trip(message: msg.LinkMessage) -> None:
    assert msg.decode(msg.encode(message)) == message


@pytest.mark.parametrize(
    "data",
    [
        b"", b"[]", b"{}", b'{"t":"nope"}', b'{"t":"hello"}', b'{"t":"hello","name":1}',
        b'{"t":"hello","name":"b","extra":"x"}', b'{"t":"beat","key":1.5}', b"[" * 100,
        b'{"t":"refused","reason":"' + b"x" * 2000 + b'"}', b"\xff\xfe", b"x" * (64 * 1024),
    ],
)  # fmt: skip
def test_bad_link_messages_are_refused(data: bytes) -> None:
    with pytest.raises(msg.LinkMessageError):
        msg.decode(data)


@given(st.binary(max_size=512))
def test_link_decoder_is_total(data: bytes) -> None:
    with contextlib.suppress(msg.LinkMessageError):
        msg.decode(data)
