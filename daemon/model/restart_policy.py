"""When a finished node comes back (SPEC 2, 5): the restart policy as a pure decision."""

from __future__ import annotations

import attrs

from daemon.model.descriptor import RestartPolicy


@attrs.frozen
class Decision:
    """`delay` seconds until the next generation, or None: no more (`gave_up` says why)."""

    delay: float | None
    history: tuple[float, ...]  # start times of the restarts still inside the window
    gave_up: bool = False


def decide(
    policy: RestartPolicy,
    *,
    failed: bool,
    can_heal: bool,
    inputs_closed: bool,
    history: tuple[float, ...],
    now: float,
) -> Decision:
    """The next restart of a node that just ended.

    `failed`: it exited non-zero or by a signal flow did not send; `can_heal`: false for an
    error that retrying cannot fix (it could not even be spawned); `inputs_closed`: every
    upstream of its data inputs has finished, so nothing more will come.
    """
    if policy.policy == "never":
        return Decision(None, history)
    wanted = can_heal if failed else policy.policy == "always" and not inputs_closed
    if not wanted:
        return Decision(None, history)
    recent = tuple(t for t in history if now - t < policy.restart_window)
    if policy.max_restarts and len(recent) >= policy.max_restarts:  # 0: no limit (dora's)
        return Decision(None, recent, gave_up=True)
    # the exponent is capped: with no limit, a window may hold many restarts
    delay = min(policy.restart_delay * 2 ** min(len(recent), 64), policy.max_restart_delay)
    return Decision(float(delay), (*recent, now))
