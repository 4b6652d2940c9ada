"""Whether and when a node of a run starts again: its restart policy applied (SPEC 2, 5)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from daemon.model.descriptor import OutputRef
from daemon.model.restart_policy import decide
from daemon.model.states import NodeStatus
from daemon.run.slot import NodeSlot

log = logging.getLogger(__name__)


def next_delay(
    run_id: str, slot: NodeSlot, slots: Mapping[str, NodeSlot], *, run_stopping: bool
) -> float | None:
    """Seconds until the slot's next generation, or None: no more (SPEC 2, 5). `slots`
    are its run's (an input whose senders have all ended may count as closed)."""
    policy = slot.spec.restart
    if run_stopping:
        return None
    if slot.take_restart_request():  # asked for by hand: at once, whatever the policy
        return 0.0
    if slot.stop_requested:
        return None
    decision = decide(
        policy,
        failed=slot.status is NodeStatus.FAILED,
        can_heal=slot.spawn_error is None,  # a spawn error never heals by retrying
        inputs_closed=inputs_all_closed(slot, slots),
        history=slot.restart_times,
        now=trio.current_time(),
    )
    slot.restart_times = decision.history
    if decision.gave_up:
        log.warning(
            "run %s: node %s: %d restarts within %gs: giving up",
            run_id, slot.id, policy.max_restarts, policy.restart_window,
        )  # fmt: skip
        # said where its ending is read (`flow list`, a run's result), not only logged
        cause = (f"gave up after {policy.max_restarts} restarts within "
                 f"{policy.restart_window:g}s (max_restarts)")  # fmt: skip
        slot.transition(NodeStatus.FAILED, stderr_tail=[*slot.stderr_tail, cause])
    return decision.delay


def inputs_all_closed(slot: NodeSlot, slots: Mapping[str, NodeSlot]) -> bool:
    """True when every upstream node of the slot's data inputs has finished for good."""
    sources = [i.source for i in slot.spec.inputs if isinstance(i.source, OutputRef)]
    return bool(sources) and all(slots[s.node].finished.is_set() for s in sources)

