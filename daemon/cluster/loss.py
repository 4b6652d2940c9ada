"""A lost machine's nodes in a run: `lost` for the grace, then lost for good; a machine
that left: lost for good at once (docs/cluster.md).

They are never started anywhere else: the slot of a node lost for good ends `lost`, with no
restart, and the run's result counts it as failed. A machine back within the grace finds
its nodes as it left them: they kept running there, and their states are `running` again.
"""

from __future__ import annotations

import logging

import trio

from daemon.model.cluster import left_cause
from daemon.model.settings import current as settings
from daemon.model.states import NodeStatus
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run

log = logging.getLogger(__name__)


def live_on(run: Run, machine_of: dict[str, str], machine: str) -> list[NodeSlot]:
    """The slots of `run` whose live process runs on `machine`."""
    return [
        s for s in run.spawned
        if machine_of.get(s.id) == machine and not s.exited.is_set() and s.pid is not None
    ]  # fmt: skip


def lose_for_good(slots: list[NodeSlot], cause: str) -> None:
    """End these nodes `lost`: never restarted, here or anywhere; the run counts them failed."""
    for slot in slots:
        if not slot.exited.is_set():
            slot.lost = slot.stop_requested = True
            slot.lose_process(cause)


def left_machine(run: Run, machine_of: dict[str, str], machine: str) -> None:
    """`machine` said goodbye (`flow down` there, which stops the nodes it hosts): its live
    nodes of `run` end `lost` at once, with no grace to wait out."""
    slots = live_on(run, machine_of, machine)
    if not slots:
        return
    cause = left_cause(machine)
    for slot in slots:
        run.record_event(slot.id, "lost", cause)
    log.warning("run %s: %s: nodes %s lost", run.id, cause, ", ".join(s.id for s in slots))
    lose_for_good(slots, cause)


async def lost_machine(run: Run, machine_of: dict[str, str], machine: str,
                       back: trio.Event, why: str = "lost") -> None:  # fmt: skip
    """Mark `machine`'s live nodes of `run` lost; re-adopt them if `back` is set within the
    grace, else end them as lost. `why`: what the event says of the machine."""
    slots = live_on(run, machine_of, machine)
    if not slots:
        return
    grace = settings().cluster_grace
    for slot in slots:
        slot.transition(NodeStatus.LOST)
        run.record_event(slot.id, "lost", f"machine {machine} {why}")
    log.warning("run %s: machine %s lost: nodes %s lost; waiting %g s for it", run.id, machine,
                ", ".join(s.id for s in slots), grace)  # fmt: skip
    with trio.move_on_after(grace):
        await back.wait()
        for slot in slots:
            if not slot.exited.is_set():
                slot.transition(NodeStatus.RUNNING)
                run.record_event(slot.id, "back", f"machine {machine} back: re-adopted")
        log.info("run %s: machine %s back within the grace: its nodes re-adopted", run.id,
                 machine)  # fmt: skip
        return
    slots = [slot for slot in slots if not slot.exited.is_set()]
    if not slots:  # ended meanwhile (their machine said it left: lost at once)
        return
    cause = f"machine {machine} lost for more than cluster_grace ({grace:g} s)"
    log.warning("run %s: %s: its nodes are lost for good", run.id, cause)
    lose_for_good(slots, cause)
