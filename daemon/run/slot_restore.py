"""A recovered run's slots take up where the daemon that went away left them (SPEC 7.4)."""

from __future__ import annotations

from typing import Any

from daemon.model.keeper_messages import NodeState
from daemon.model.states import NodeStatus
from daemon.run.slot import NodeSlot


def restore(
    slot: NodeSlot, generation: int, restarts: int, ended: NodeStatus | None = None,
    **exit: Any,
) -> None:  # fmt: skip
    """Its counters as the store kept them, for a run recovered after a daemon restart.

    `ended`: the node had ended for good before the daemon went away (`exit`: with this
    `exit_code`, when only its keeper saw it); it keeps that status and is never started
    again (the Cronicle lesson, fault matrix C6).
    """
    slot.generation, slot.restarts = generation, restarts
    if ended is not None:
        slot.transition(ended, **exit)


def adopt(slot: NodeSlot, state: NodeState) -> None:
    """Take over a generation a keeper kept alive through a daemon restart (SPEC 7.4)."""
    slot.spawned.set()
    slot.first_spawn.set()
    slot.settled.set()
    if state.alive:
        slot.transition(NodeStatus.RUNNING, generation=state.generation, pid=state.pid)
        if slot.spec.connects:  # a process node never did: a stop SIGTERMs it
            slot.connected.set()  # its DEALER reconnects to the new daemon by itself
    else:  # the slot's `_record_exit` writes its end
        slot.transition(generation=state.generation, pid=state.pid)
        slot.exit_code = state.code
        slot.stderr_tail = list(state.tail)
        slot.exited.set()
