"""Parameters: the YAML reader and value checks (daemon.model.params), the node's side
(node_sdk.params) and their node channel messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.model import params as model
from daemon.model.descriptor import parse_dataflow
from daemon.model.errors import BadRequest, DataflowInvalid
from node_sdk import channel
from node_sdk.errors import NodeError
from node_sdk.events import EventType
from node_sdk.params import Params


def _parse(tmp_path: Path, params: str) -> dict[str, str]:
    (tmp_path / "n.py").write_text("")
    text = f"nodes:\n  - id: a\n    path: n.py\n    params: {params}\n"
    return dict(parse_dataflow(tmp_path / "f.yml", text).nodes[0].params)


def test_yaml_params_become_compact_json(tmp_path: Path) -> None:
    got = _parse(tmp_path, '{gain: 0.5, name: x, on: true, deep: [1, {a: 2}]}')
    assert got == {"gain": "0.5", "name": '"x"', "on": "true", "deep": '[1,{"a":2}]'}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("[1, 2]", "expected a mapping"),
        ('{"bad key": 1}', "invalid parameter key 'bad key'"),
        ("{x: .nan}", "not a JSON value"),
    ],
)
def test_bad_yaml_params_are_one_line_each(tmp_path: Path, params: str, says: str) -> None:
    with pytest.raises(DataflowInvalid) as caught:
        _parse(tmp_path, params)
    assert says in str(caught.value)
    assert "params" in str(caught.value)


def test_values_are_bounded_json() -> None:
    assert model.value_text(" [1,  2] ", "k") == "[1,2]"
    with pytest.raises(BadRequest, match="parameter 'k'"):
        model.value_text("not json", "k")
    with pytest.raises(BadRequest, match="bytes"):
        model.value_text(json.dumps("x" * model.MAX_VALUE_BYTES), "k")
    with pytest.raises(BadRequest, match="nested"):
        model.value_text("[" * 40 + "]" * 40, "k")
    assert model.current({"a": "1", "b": "2"}, {"b": None, "c": "3"}) == {"a": "1", "c": "3"}


def test_param_messages_round_trip() -> None:
    for message in (
        channel.Param("gain", "0.5", 7, 5000),
        channel.Param("gain", None),
        channel.ParamAck(7),
        channel.ParamAck(7, "too high"),
    ):
        assert channel.decode(channel.encode(message)) == message
    with pytest.raises(NodeError):
        channel.decode(b'{"t":"param_ack","token":0}')
    with pytest.raises(NodeError):
        channel.decode(json.dumps({"t": "param", "key": "k", "value": "1" * 70000,
                                   "token": 1, "timeout_ms": 1}).encode())  # fmt: skip


def _answers() -> tuple[Params, list[channel.Message]]:
    params = Params()
    sent: list[channel.Message] = []
    params.answer = lambda frame: sent.append(channel.decode(frame))
    return params, sent


def test_current_values_set_at_once_and_changes_come_as_events() -> None:
    params, sent = _answers()
    assert params.receive(channel.Param("gain", "1.0")) is None
    assert params.values == {"gain": 1.0}
    event = params.receive(channel.Param("gain", "2", token=3, timeout_ms=5000))
    assert event is not None
    assert (event.type, event.id, event.value) == (EventType.PARAM, "gain", 2)
    assert params.values == {"gain": 1.0}  # applied when handed out, not on arrival
    assert params.take(event) is event
    assert params.values == {"gain": 2}
    assert sent == []  # answered when the node comes back for its next event
    params.settle()
    assert sent == [channel.ParamAck(3)]


def test_reject_puts_the_old_value_back() -> None:
    params, sent = _answers()
    params.receive(channel.Param("gain", "1.0"))
    event = params.receive(channel.Param("gain", "-1", token=4, timeout_ms=5000))
    assert event is not None
    params.take(event)
    params.reject("gain", "must be >= 0")
    assert params.values == {"gain": 1.0}
    assert sent == [channel.ParamAck(4, "must be >= 0")]
    params.settle()  # nothing left to answer
    assert len(sent) == 1
    with pytest.raises(NodeError, match="no PARAM event"):
        params.reject("gain", "again")


def test_a_new_key_rejected_is_gone_again_and_a_validator_refuses_unseen() -> None:
    params, sent = _answers()
    event = params.receive(channel.Param("new", "1", token=5, timeout_ms=5000))
    assert event is not None
    params.take(event)
    params.reject("new", "no")
    assert "new" not in params.values

    def validator(key: str, value: object) -> str | None:
        if value == 0:
            raise ValueError("zero")
        return "read-only" if key == "locked" else None

    params.validator = validator
    locked = params.receive(channel.Param("locked", "1", token=6, timeout_ms=5000))
    zero = params.receive(channel.Param("x", "0", token=7, timeout_ms=5000))
    assert locked is not None
    assert zero is not None
    assert params.take(locked) is None
    assert params.take(zero) is None
    assert sent[-2:] == [channel.ParamAck(6, "read-only"), channel.ParamAck(7, "zero")]
    assert params.values == {}


def test_a_change_read_after_its_deadline_is_dropped_unseen() -> None:
    params, sent = _answers()
    event = params.receive(channel.Param("gain", "9", token=8, timeout_ms=0))
    assert event is not None
    assert params.take(event) is None
    assert params.values == {}
    assert sent == []  # the daemon gave up already: nothing to say


def test_a_malformed_value_is_refused_by_the_nodes_thread() -> None:
    params, sent = _answers()
    assert params.receive(channel.Param("k", "{nope")) is None  # a current value: skipped
    assert params.values == {}
    event = params.receive(channel.Param("k", "{nope", token=9, timeout_ms=5000))
    assert event is not None
    assert sent == []  # not from the receiving thread
    assert params.take(event) is None
    assert len(sent) == 1
    assert isinstance(sent[0], channel.ParamAck)
    assert sent[0].token == 9
    assert "malformed value" in (sent[0].error or "")
