"""The daemon's word to senders on their receivers (`receiver_down`), from real slots in
each state a receiver can be in, behind a fake run that records what it sends."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from daemon.model.descriptor import Input, NodeSpec, OutputRef, RestartPolicy
from daemon.model.keeper_messages import Exited, Spawned
from daemon.run.receiver_word import tell_at_start, tell_late_sender, tell_senders
from daemon.run.slot import NodeSlot
from node_sdk import channel


@attrs.define(eq=False)
class FakeRun:
    """The part of a `Run` the word needs; every message sent is kept as (node, message)."""

    id: str = "run-1"
    slots: dict[str, NodeSlot] = attrs.field(factory=dict)
    sent: list[tuple[str, channel.Message]] = attrs.field(factory=list)

    def send_to_node(self, slot: NodeSlot, message: channel.Message) -> None:
        self.sent.append((slot.id, message))

    def record_node(self, node_id: str, fields: dict[str, Any]) -> None:
        pass


def spec(node: str, *sources: str, dynamic: bool = False) -> NodeSpec:
    inputs = tuple(Input(f"in{i}", OutputRef(s, "out")) for i, s in enumerate(sources))
    return NodeSpec(id=node, name=None, description=None, path="dynamic" if dynamic else "x.py",
                    executable=None, args=(), env={}, inputs=inputs, outputs=("out",),
                    build=(), restart=RestartPolicy(), send_stdout_as=None, machine=None,
                    raw={}, line=1)  # fmt: skip


def running(run: FakeRun, node_spec: NodeSpec) -> NodeSlot:
    """A slot whose generation 1 is alive and said hello."""
    slot = NodeSlot(spec=node_spec, run=run)  # type: ignore[arg-type]  # the fake's part
    run.slots[slot.id] = slot
    slot.generation = 1
    slot.on_keeper_event(Spawned(slot.id, 1, 4000 + len(run.slots)))
    slot.mark_connected()
    return slot


def test_a_receiver_going_down_is_told_to_every_live_sender_once() -> None:
    run = FakeRun()
    a, b = running(run, spec("a")), running(run, spec("b"))
    gone = running(run, spec("c"))
    gone.on_keeper_event(Exited("c", 1, 0))  # an exited sender hears nothing
    receiver = running(run, spec("r", "a", "b", "a", "c"))
    tell_senders(run, receiver, restarting=True)
    assert run.sent == [("a", channel.ReceiverDown("r", True)),
                        ("b", channel.ReceiverDown("r", True))]  # fmt: skip
    assert (a.alive, b.alive, gone.alive) == (True, True, False)


def test_a_dynamic_receiver_gets_no_word_it_is_unwired_instead() -> None:
    run = FakeRun()
    running(run, spec("a"))
    tell_senders(run, running(run, spec("d", "a", dynamic=True)), restarting=False)
    assert run.sent == []


async def test_a_late_sender_hears_of_each_receiver_that_is_down_then() -> None:
    run = FakeRun()
    sender = running(run, spec("s"))
    running(run, spec("up", "s"))  # alive and connected: nothing to say
    delayed = running(run, spec("delayed", "s"))
    delayed.on_keeper_event(Exited("delayed", 1, 1))  # in its restart delay, still `connected`
    pending = running(run, spec("pending", "s"))
    pending.connected = trio.Event()  # its next generation spawned, not connected yet
    ended = running(run, spec("ended", "s"))
    ended.finished.set()
    running(run, spec("other", "up"))  # not fed by the sender
    tell_late_sender(run, sender)
    assert run.sent == [
        ("s", channel.ReceiverDown("delayed", True)),
        ("s", channel.ReceiverDown("pending", True)),
        ("s", channel.ReceiverDown("ended", False)),
    ]


async def test_at_the_start_senders_hear_only_of_receivers_between_generations() -> None:
    run = FakeRun()
    running(run, spec("s"))
    running(run, spec("up", "s"))
    delayed = running(run, spec("delayed", "s"))
    delayed.on_keeper_event(Exited("delayed", 1, 1))
    ended = running(run, spec("ended", "s"))
    ended.finished.set()  # told by `Run.node_finished`, not here
    running(run, spec("d", "s", dynamic=True)).connected = trio.Event()  # no word: unwired
    tell_at_start(run)
    assert run.sent == [("s", channel.ReceiverDown("delayed", True))]
