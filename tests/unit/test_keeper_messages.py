"""The keeper channel's decoder is total: any bytes give a message or `KeeperMessageError`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.model.keeper_messages import (
    MAX_COUNTED,
    MAX_DEPTH,
    TAGS,
    Attach,
    Degraded,
    Edge,
    Exited,
    KeeperMessage,
    KeeperMessageError,
    NodeState,
    OutputCounts,
    Ping,
    Pong,
    Quit,
    Release,
    Signal,
    Spawn,
    Spawned,
    SpawnFailed,
    State,
    StdoutAs,
    StdoutKeys,
    StdoutStats,
    UnwireStdout,
    WireStdout,
    decode,
    encode,
)

EVERY_KIND: list[KeeperMessage] = [
    Attach(), Ping(), Quit(), Pong(), Signal("a", 15),
    Spawn("a", 3, ("python", "a.py"), {"K": "v"}, "/tmp", "/tmp/a.log",
          StdoutAs("a/out", (Edge("ipc:///tmp/x", "b", "in", "drop_oldest", 10),),
                   restartable=True, held=True)),
    Release("a", 3),
    WireStdout("a", Edge("tcp://10.0.0.2:7000", "observer-ab12cd", "observe", "drop_oldest", 64,
                         "k" * 40), StdoutKeys("p" * 40, "/home/u/.flow/key", 1000, 5000)),
    UnwireStdout("a", "ipc:///tmp/obs-1-abcdef"),
    State({"a": NodeState(2, 1234, None, True, ("last line",))}, "logs: disk full"),
    Spawned("a", 1, 99), SpawnFailed("a", 1, "no such file"), Exited("a", 1, -9, ("x",)),
    Degraded("logs: disk full", 3),
    StdoutStats((OutputCounts("talker", 2, "lines", 40, 1, 320),
                 OutputCounts("b", 1, "o", 0, 0, 0))),
]  # fmt: skip


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: TAGS[type(m)])
def test_every_message_survives_the_wire(message: KeeperMessage) -> None:
    assert decode(encode(message)) == message


def decodes_or_refuses(data: bytes) -> None:
    try:
        message = decode(data)
    except KeeperMessageError:
        return
    assert type(message) in TAGS
    assert decode(encode(message)) == message


# a loaded 2-core machine: never judge speed, only totality
LOADED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@LOADED
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@LOADED
@given(
    st.sampled_from(sorted(TAGS.values())),
    st.dictionaries(
        st.sampled_from(
            [
                "node",
                "generation",
                "pid",
                "sig",
                "code",
                "tail",
                "nodes",
                "argv",
                "env",
                "cwd",
                "log",
                "stdout_as",
                "error",
                "what",
                "dropped",
                "degraded",
                "outputs",
                "output",
                "sent",
                "bytes",
                "extra",
            ]
        ),
        JSON,
    ),
)
def test_structured_garbage_of_every_kind(tag: str, body: dict[str, Any]) -> None:
    decodes_or_refuses(json.dumps({"t": tag, **body}, allow_nan=True).encode())  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 2200,
        b"{" * 100_000,
        b'{"t":"spawned","node":"a","generation":1,"pid":[1]}',
        b'{"t":"spawned","node":"a","generation":1,"pid":1e400}',
        b'{"t":"spawned","node":"a","generation":1,"pid":1000000000000000000000000000000}',
        b'{"t":"spawned","node":"a","generation":1,"pid":' + b"9" * 5000 + b"}",
        b'{"t":"spawned","node":"a","generation":1,"pid":NaN}',
        b'{"t":"spawned","node":"a","generation":"1","pid":1}',
        b'{"t":"spawned","node":"a","generation":true,"pid":1}',
        b'{"t":"exited","node":"a","generation":1,"code":null,"tail":"abc"}',
        b'{"t":"state","nodes":["a"]}',
        b'{"t":"signal","node":"a","sig":0}',
        b'{"t":"signal","node":"a","sig":33}',  # a number Python has no Signals member for
        b'{"t":"exited","node":"a","generation":1,"code":4611686018427387904,"tail":[]}',
        b'{"t":"exited","node":"a","generation":1,"code":-33,"tail":[]}',
        b'{"t":"ping","more":1}',
        # stdout_stats: counts are whole numbers, never negative, never coerced
        b'{"t":"stdout_stats","outputs":{"a":1}}',
        b'{"t":"stdout_stats","outputs":[[1]]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":-1,'
        b'"dropped":0,"bytes":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":-1,"output":"o","sent":1,'
        b'"dropped":0,"bytes":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":1.5,'
        b'"dropped":0,"bytes":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":"1",'
        b'"dropped":0,"bytes":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":1,'
        b'"dropped":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":1,'
        b'"dropped":0,"bytes":0,"rate":3}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":true,'
        b'"dropped":0,"bytes":0}]}',
        b'{"t":"stdout_stats","outputs":[{"node":"a","generation":1,"output":"o","sent":'
        + b"9" * 30 + b',"dropped":0,"bytes":0}]}',
        b'{"t":"nothing"}',
        b'{"t":["ping"]}',
        b'"ping"',
        b"\xff\xfe\xfd",
        b"",
    ],
)
def test_known_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(KeeperMessageError):
        decode(data)


def test_nesting_is_bounded() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    data = json.dumps({"t": "exited", "node": "a", "generation": 1, "code": 0, "tail": deep})
    with pytest.raises(KeeperMessageError, match="deeper"):
        decode(data.encode())


def test_stdout_stats_are_bounded_in_entries() -> None:
    entry = {"node": "a", "generation": 1, "output": "o", "sent": 1, "dropped": 0, "bytes": 5}
    fits = json.dumps({"t": "stdout_stats", "outputs": [entry] * MAX_COUNTED}).encode()
    message = decode(fits)
    assert isinstance(message, StdoutStats)
    assert len(message.outputs) == MAX_COUNTED
    over = json.dumps({"t": "stdout_stats", "outputs": [entry] * (MAX_COUNTED + 1)}).encode()
    with pytest.raises(KeeperMessageError, match=f"more than {MAX_COUNTED}"):
        decode(over)
