"""A lone surrogate escape (`"\\ud800"`: valid JSON, a str that cannot be encoded) is
refused by every reader of JSON from another process: the control socket, the node
channel, the keeper's and the cluster link's messages, a data frame's extra. A pair of
escapes is one character and passes."""

from __future__ import annotations

import pytest

from daemon.model import cluster_messages, keeper_messages
from daemon.model.errors import BadRequest
from daemon.model.protocol import decode_request
from node_sdk import NodeError, channel, strictjson, wire

LONE = ("\\ud800", "\\uDFFF", "\\udc80")


@pytest.mark.parametrize("escape", LONE)
def test_every_reader_refuses_a_lone_surrogate(escape: str) -> None:
    request = f'{{"v":1,"id":"r1","type":"stop","body":{{"run":"a{escape}"}}}}'.encode()
    with pytest.raises(BadRequest, match="not valid Unicode"):
        decode_request(request)
    with pytest.raises(NodeError, match="lone surrogate"):
        channel.decode(f'{{"t":"stop","why":"{escape}"}}'.encode())
    with pytest.raises(keeper_messages.KeeperMessageError, match="lone surrogate"):
        keeper_messages.decode(f'{{"t":"log","line":"{escape}"}}'.encode())
    with pytest.raises(cluster_messages.LinkMessageError, match="lone surrogate"):
        cluster_messages.decode(f'{{"t":"hello","name":"{escape}"}}'.encode())
    with pytest.raises(NodeError, match="not valid Unicode"):
        wire.decode_extra(f'{{"s":"a/o","m":{{"note":"{escape}"}}}}'.encode())
    with pytest.raises(NodeError, match="lone surrogate"):  # a key, too
        strictjson.loads(f'{{"{escape}":1}}', "config", max_bytes=100, max_depth=4)


def test_a_pair_of_escapes_is_one_character_and_passes() -> None:
    extra = wire.decode_extra(b'{"s":"a/o","m":{"face":"\\ud83d\\ude00"}}')
    assert extra["m"]["face"] == "\U0001f600"
    assert strictjson.loads('{"x":"\\uD83D\\uDE00"}', "config", max_bytes=100, max_depth=4)
