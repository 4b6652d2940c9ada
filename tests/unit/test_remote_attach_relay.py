"""A member's side of a dynamic node attaching on it (daemon/cluster/remote_attach.py): the
attach goes to the coordinator, the answer back to its process with this machine's facts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import trio

from daemon.cluster import remote_attach
from daemon.cluster.keys import machine_keys, secret_key_file
from daemon.model import cluster_messages as msg
from node_sdk import channel, config

RUN = str(uuid.uuid4())
IDENTITY = b"attach/4242/ab12"


class _Channel:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, channel.Message]] = []

    def send(self, identity: bytes, message: channel.Message) -> bool:
        self.sent.append((identity, message))
        return True


def _relay(home: Path, up: bool = True) -> tuple[remote_attach.AttachRelay, list[msg.Carry]]:
    to_coordinator: list[msg.Carry] = []

    def link_send(carry: msg.Carry) -> bool:
        if up:
            to_coordinator.append(carry)
        return up

    rt: Any = types.SimpleNamespace(home=home, nodes_endpoint="ipc:///member/nodes",
                                    channel=_Channel())  # fmt: skip
    return remote_attach.AttachRelay(rt, machine_keys(home), link_send), to_coordinator


def _granted(home: Path) -> config.NodeConfig:
    keys = machine_keys(home)
    return config.NodeConfig(
        run=RUN, run_name="live", node="viewer", generation=2, restarts=0,
        daemon="ipc:///coordinator/nodes", descriptor="/coordinator/copy.yml", config={},
        inputs={"data": config.DataInput("data", "tcp://10.0.0.2:7001", 10, "drop_oldest",
                                         ("counter/count",))},
        outputs={},
        tcp=config.TcpSecurity(keys.public, "/coordinator/cluster/machine.key", (keys.public,)),
    )  # fmt: skip


def _answer(token: str, reply: channel.Message) -> msg.Carry:
    return msg.Carry("", msg.ATTACH_KIND, channel.encode(reply).decode(), token)


def test_an_attach_goes_to_the_coordinator_and_its_grant_back_with_this_machines_facts(
    tmp_path: Path,
) -> None:
    relay, sent = _relay(tmp_path)
    request = channel.Attach("viewer", "live", 4242)
    assert relay.ask(IDENTITY, request)
    (carry,) = sent
    assert msg.decode(msg.encode(carry)) == carry  # a link message like any other
    assert carry.kind == msg.ATTACH_KIND
    assert channel.decode(carry.body.encode()) == request
    granted = _granted(tmp_path)
    assert relay.on_carry(_answer(carry.ident, channel.Attached(granted)))
    ((identity, reply),) = relay.rt.channel.sent  # type: ignore[union-attr]
    assert identity == IDENTITY
    assert isinstance(reply, channel.Attached)
    assert reply.config.daemon == "ipc:///member/nodes"
    assert reply.config.descriptor is None
    assert reply.config.tcp is not None
    assert reply.config.tcp.secret_file == str(secret_key_file(tmp_path, machine_keys(tmp_path)))
    assert reply.config.inputs == granted.inputs
    # the same answer again (or one for nobody) reaches no process
    assert relay.on_carry(_answer(carry.ident, channel.Attached(granted)))
    assert relay.on_carry(_answer("0" * 16, channel.Refused("x")))
    assert len(relay.rt.channel.sent) == 1  # type: ignore[union-attr]


def test_a_refusal_or_a_garbled_answer_is_one_line_to_the_process(tmp_path: Path) -> None:
    relay, sent = _relay(tmp_path)
    for _ in range(2):
        assert relay.ask(IDENTITY, channel.Attach("viewer", None, 1))
    line = "node viewer in dataflow live is placed on machine c, not b: attach it there"
    assert relay.on_carry(_answer(sent[0].ident, channel.Refused(line)))
    garbled = msg.Carry("", msg.ATTACH_KIND, "{not json", sent[1].ident)
    assert relay.on_carry(garbled)
    replies = [reply for _, reply in relay.rt.channel.sent]  # type: ignore[union-attr]
    assert replies[0] == channel.Refused(line)
    assert isinstance(replies[1], channel.Refused)
    assert replies[1].error.startswith("the coordinator's answer was not readable")
    assert not relay.on_carry(msg.Carry(RUN, "keeper", "{}"))  # not an attach: not taken


def test_without_a_coordinator_or_past_the_bound_the_local_refusal_stands(
    tmp_path: Path,
) -> None:
    down, _ = _relay(tmp_path, up=False)
    assert not down.ask(IDENTITY, channel.Attach("viewer", None, 1))
    assert not down.waiting
    relay, sent = _relay(tmp_path)
    for _ in range(remote_attach.MAX_WAITING):
        assert relay.ask(IDENTITY, channel.Attach("viewer", None, 1))
    assert not relay.ask(IDENTITY, channel.Attach("viewer", None, 1))
    assert len(sent) == remote_attach.MAX_WAITING


def test_an_attached_process_that_ends_is_reported_gone(tmp_path: Path) -> None:
    relay, sent = _relay(tmp_path)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a pid that no longer runs (reused within the test: most unlikely)
    assert relay.ask(IDENTITY, channel.Attach("viewer", "live", ended.pid))
    assert relay.ask(IDENTITY, channel.Attach("viewer", "live", os.getpid()))  # alive
    relay.on_carry(_answer(sent[0].ident, channel.Attached(_granted(tmp_path))))
    live = dataclasses.replace(_granted(tmp_path), generation=3)
    relay.on_carry(_answer(sent[1].ident, channel.Attached(live)))

    async def one_look() -> None:
        with trio.move_on_after(0.2):
            await relay.watch()

    trio.run(one_look)
    gone = [carry for carry in sent if carry.kind == msg.GONE_KIND]
    assert gone == [msg.Carry(RUN, msg.GONE_KIND, str(ended.pid), f"{RUN}/viewer/2")]
    assert relay.attached == {f"{RUN}/viewer/3": os.getpid()}
