"""What a sender hears of its receivers: one between two generations, or one gone for good.

A sender that ends while a receiver is down cannot tell a receiver that is restarting from
one that has ended: both are a broken connection (node_sdk/flush.py). The daemon can, so
it says so with `receiver_down` to every node feeding the receiver, when the receiver's
restart is decided and when it has finished for good; to every sender, when the start
barrier lets it go, for the receivers between generations then; and to a sender's late
generation for the receivers that are down when it connects. Dynamic receivers are left out: a
detached one is unwired from its senders instead (`Run.node_detached`). A running sender
gives a receiver gone for good up at once (its edges, what they queued, the shared memory
only it held: node_sdk/wiring.py); one restarting keeps its edges for the next generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from daemon.model.descriptor import OutputRef
from daemon.run.slot import NodeSlot
from node_sdk import channel


class _Run(Protocol):
    @property
    def slots(self) -> dict[str, NodeSlot]: ...

    def send_to_node(self, slot: NodeSlot, message: channel.Message) -> None: ...


def _sources(slot: NodeSlot) -> set[str]:
    """The nodes that feed `slot`'s data inputs."""
    return {i.source.node for i in slot.spec.inputs if isinstance(i.source, OutputRef)}


def _senders(run: _Run, receiver: NodeSlot) -> Iterable[NodeSlot]:
    return (run.slots[name] for name in sorted(_sources(receiver)) if name in run.slots)


def tell_senders(run: _Run, receiver: NodeSlot, *, restarting: bool) -> None:
    """`receiver` is down: its next generation comes (`restarting`), or none will. Told to
    the senders alive now; a later generation of one hears it when it connects."""
    if receiver.spec.is_dynamic:
        return
    for sender in _senders(run, receiver):
        if sender.alive:
            run.send_to_node(sender, channel.ReceiverDown(receiver.id, restarting))


def _between_generations(receiver: NodeSlot) -> bool:
    """Exited and in its restart delay (its last generation's `connected` is still set), or
    its next generation not connected yet."""
    return not receiver.finished.is_set() and not (
        receiver.alive and receiver.connected.is_set()
    )


def tell_at_start(run: _Run) -> None:
    """The start barrier has let every node go: its senders hear of each receiver that is
    between generations then. What they were told before they connected was not sent
    (`Run.send_to_node`); the receivers that finished are told by `Run.node_finished`."""
    for receiver in run.slots.values():
        if _between_generations(receiver):
            tell_senders(run, receiver, restarting=True)


def tell_late_sender(run: _Run, sender: NodeSlot) -> None:
    """A generation of `sender` that connected after the start: its receivers that are
    down now (finished, or between generations)."""
    for receiver in run.slots.values():
        if receiver.finished.is_set():
            down = channel.ReceiverDown(receiver.id, False)
        elif _between_generations(receiver):
            down = channel.ReceiverDown(receiver.id, True)
        else:
            continue
        if not receiver.spec.is_dynamic and sender.id in _sources(receiver):
            run.send_to_node(sender, down)
