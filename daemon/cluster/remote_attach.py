"""A dynamic node attaching on a member machine (docs/cluster.md, "Dynamic nodes").

The process runs on its machine and attaches to that machine's daemon (`Node("id")`, its
FLOW_HOME), which finds no run of its own with that node and passes the request on to its
coordinator as an `attach` carry. The coordinator grants it as a local attach
(daemon/run/dynamic.py: a new generation, its senders wired live, over tcp:// with the
machine keys when they run elsewhere) when the node is placed on that very machine, and
sends the answer back; the member puts its own facts in the configuration (its node
channel, its key file) and answers the process. From then on the node's frames are relayed
like those of any node placed there; its heartbeat is the coordinator's to watch, and the
member says when the process has ended (`gone`), as a local daemon sees its pid go.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import Final

import attrs
import trio

from daemon.cluster.keys import KeyPair, secret_key_file
from daemon.model.cluster_messages import (
    ATTACH_KIND,
    GONE_KIND,
    MAX_CARRY_BYTES,
    Carry,
    encode,
)
from daemon.model.errors import RecoverableError
from daemon.run.dynamic import (
    WATCH_EVERY_S,
    AttachRefused,
    find_dynamic_slot,
    grant,
    machine_of,
    process_gone,
)
from daemon.run.runtime import Runtime
from node_sdk import channel
from node_sdk.config import NodeConfig
from node_sdk.errors import NodeError

log = logging.getLogger(__name__)

ANSWER_WAIT_S: Final = 30.0  # longer than any attaching process waits for its answer
MAX_WAITING: Final = 256  # attaches waiting for the coordinator; more are refused here


def answer(rt: Runtime, here: str, machine: str, carry: Carry) -> Carry:
    """The coordinator's answer to an attach relayed by `machine` (its `ident` kept)."""
    reply: channel.Message
    try:
        request = channel.decode(carry.body.encode())
        if not isinstance(request, channel.Attach):
            raise NodeError(f"expected attach, got {type(request).__name__.lower()}")
        run, slot = find_dynamic_slot(rt, request.node, request.dataflow or None)
        placed_on = machine_of(run, slot) or here
        if placed_on != machine:
            raise AttachRefused(f"node {slot.id} in dataflow {run.name or run.id} is placed on "
                                f"machine {placed_on}, not {machine}: attach it there")  # fmt: skip
        granted = Carry(carry.run, ATTACH_KIND,
                        channel.encode(channel.Attached(grant(run, slot, None))).decode(),
                        carry.ident)  # fmt: skip
        size = len(encode(granted))
        if size > MAX_CARRY_BYTES:  # the member would refuse it: its process would wait
            slot.detach(f"configuration too large for the cluster link ({size} bytes)")
            raise AttachRefused(f"node {slot.id}: its configuration ({size} bytes) is too "
                                f"large to send to machine {machine}")  # fmt: skip
        log.info("run %s: dynamic node %s attached on machine %s (pid %d there)", run.id,
                 slot.id, machine, request.pid)  # fmt: skip
        return granted
    except RecoverableError as exc:
        log.warning("dynamic attach on machine %s refused: %s", machine, exc)
        reply = channel.Refused(str(exc))
    except NodeError as exc:
        log.warning("cluster: machine %s relayed a malformed attach: %s", machine, exc)
        reply = channel.Refused(f"malformed attach request: {exc}")
    return Carry(carry.run, ATTACH_KIND, channel.encode(reply).decode(), carry.ident)


def on_gone(rt: Runtime, machine: str, carry: Carry) -> None:
    """`machine` saw the process of an attached dynamic node end: its slot is freed now,
    not when its heartbeat is missed (what a crash there would otherwise cost)."""
    parts = carry.ident.split("/")
    run = rt.runs.get(parts[0]) if len(parts) == 3 else None
    slot = run.slots.get(parts[1]) if run is not None else None
    if run is None or slot is None or not slot.spec.is_dynamic or not slot.attached:
        return  # detached already (its bye came first), or nothing of ours
    if str(slot.generation) == parts[2] and machine_of(run, slot) == machine:
        slot.detach(f"process {carry.body[:20]} on machine {machine} is gone")


@attrs.define(eq=False)
class AttachRelay:
    """A member's attaches waiting for the coordinator's answer, by token."""

    rt: Runtime
    keys: KeyPair
    link_send: Callable[[Carry], bool]  # to the coordinator; False while the link is down
    # token -> (the attaching process's channel identity, since when, its pid)
    waiting: dict[str, tuple[bytes, float, int]] = attrs.field(factory=dict)
    attached: dict[str, int] = attrs.field(factory=dict)  # its node identity -> its pid

    def ask(self, identity: bytes, request: channel.Attach) -> bool:
        """The node channel's `attach_elsewhere`: True when the coordinator was asked."""
        now = time.monotonic()
        for token, (_, since, _pid) in list(self.waiting.items()):
            if now - since > ANSWER_WAIT_S:
                del self.waiting[token]  # its process gave up long ago
        if len(self.waiting) >= MAX_WAITING:
            log.warning("cluster: %d attaches wait for the coordinator: refused here",
                        MAX_WAITING)  # fmt: skip
            return False
        token = secrets.token_hex(8)
        if not self.link_send(Carry("", ATTACH_KIND, channel.encode(request).decode(), token)):
            return False  # no coordinator: the local refusal stands
        self.waiting[token] = (identity, now, request.pid)
        return True

    def on_carry(self, carry: Carry) -> bool:
        """The coordinator's answer to one of ours, to its process (True: taken)."""
        if carry.kind != ATTACH_KIND:
            return False
        identity, _, pid = self.waiting.pop(carry.ident, (b"", 0.0, 0))
        if not identity:
            return True  # answered too late, or not ours
        reply: channel.Message
        try:
            reply = channel.decode(carry.body.encode())
        except NodeError as exc:
            reply = channel.Refused(f"the coordinator's answer was not readable: {exc}")
        if isinstance(reply, channel.Attached):
            reply = channel.Attached(self._localize(reply.config))
            node = reply.config
            self.attached[f"{node.run}/{node.node}/{node.generation}"] = pid
        elif not isinstance(reply, channel.Refused):
            reply = channel.Refused("the coordinator answered the attach with something else")
        if isinstance(reply, channel.Refused):  # a log line here too, as for a local refusal
            log.warning("dynamic attach refused by the coordinator: %s", reply.error)
        assert self.rt.channel is not None
        self.rt.channel.send(identity, reply)
        return True

    async def watch(self) -> None:
        """Tell the coordinator at once when an attached process here has ended (a crash
        sends no bye); the coordinator frees its slot (`on_gone`)."""
        while True:
            for identity, pid in list(self.attached.items()):
                if process_gone(pid):
                    del self.attached[identity]
                    run = identity.split("/")[0]
                    self.link_send(Carry(run, GONE_KIND, str(pid), identity))  # down: the
                    # coordinator misses its heartbeat instead
            await trio.sleep(WATCH_EVERY_S)

    def _localize(self, config: NodeConfig) -> NodeConfig:
        """This machine's facts in the coordinator's configuration (as for a spawn here)."""
        tcp = config.tcp
        if tcp is not None:
            tcp = dataclasses.replace(tcp, secret_file=str(secret_key_file(self.rt.home,
                                                                           self.keys)))  # fmt: skip
        return dataclasses.replace(config, daemon=self.rt.nodes_endpoint, descriptor=None,
                                   tcp=tcp)  # fmt: skip
