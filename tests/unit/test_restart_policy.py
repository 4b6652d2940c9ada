"""The restart decision: doubling delays, the cap, the window, and when not to restart."""

from __future__ import annotations

from daemon.model.descriptor import RestartPolicy
from daemon.model.restart_policy import decide

ON_FAILURE = RestartPolicy(policy="on-failure", max_restarts=3, restart_window=10.0,
                           restart_delay=0.5, max_restart_delay=1.5)  # fmt: skip


def run_crashes(policy: RestartPolicy, times: list[float]) -> list[float | None]:
    history: tuple[float, ...] = ()
    delays = []
    for now in times:
        decision = decide(policy, failed=True, can_heal=True, inputs_closed=False,
                          history=history, now=now)  # fmt: skip
        history = decision.history
        delays.append(decision.delay)
    return delays


def test_delays_double_up_to_the_cap_then_give_up() -> None:
    assert run_crashes(ON_FAILURE, [0.0, 1.0, 2.0, 3.0]) == [0.5, 1.0, 1.5, None]


def test_restarts_outside_the_window_are_forgotten() -> None:
    assert run_crashes(ON_FAILURE, [0.0, 1.0, 2.0, 30.0]) == [0.5, 1.0, 1.5, 0.5]


def test_never_and_clean_exits_under_on_failure_do_not_restart() -> None:
    never = RestartPolicy(policy="never")
    assert decide(never, failed=True, can_heal=True, inputs_closed=False,
                  history=(), now=0.0).delay is None  # fmt: skip
    assert decide(ON_FAILURE, failed=False, can_heal=True, inputs_closed=False,
                  history=(), now=0.0).delay is None  # fmt: skip


def test_spawn_errors_never_heal() -> None:
    decision = decide(ON_FAILURE, failed=True, can_heal=False, inputs_closed=False,
                      history=(), now=0.0)  # fmt: skip
    assert decision.delay is None
    assert not decision.gave_up


def test_always_restarts_clean_exits_unless_inputs_closed() -> None:
    always = RestartPolicy(policy="always", restart_delay=0.25)
    assert decide(always, failed=False, can_heal=True, inputs_closed=False,
                  history=(), now=0.0).delay == 0.25  # fmt: skip
    assert decide(always, failed=False, can_heal=True, inputs_closed=True,
                  history=(), now=0.0).delay is None  # fmt: skip
