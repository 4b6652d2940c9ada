"""M3: a run's result with an auxiliary fault is the result without it (fake keeper)."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from run_fakes import Behaviour, RunMaker

from daemon.model.keeper_messages import Degraded
from daemon.model.states import RunStatus
from daemon.run import lifecycle

THREE = """
nodes:
  - id: a
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/100
  - id: b
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/100
  - id: c
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/100
"""
EXIT_AT = {"a": 2.0, "b": 5.0, "c": 8.0}  # virtual seconds after the spawn


async def result_of(
    make_run: RunMaker, codes: dict[str, int], stop_at: float | None, fault: str | None
) -> RunStatus:
    behaviours = {n: Behaviour(exit_after=EXIT_AT[n], code=codes[n]) for n in EXIT_AT}
    run, keeper = make_run(THREE, behaviours)
    store = run.store
    store.failing = fault == "store"  # type: ignore[attr-defined]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: lifecycle.supervise(
                run, keeper=keeper, task_status=task_status))  # fmt: skip
            if fault == "logs":  # the keeper's log disk is full
                run.on_keeper_event(Degraded(what="logs: No space left on device", dropped=3))
            if stop_at is not None:
                with trio.move_on_after(stop_at):
                    await run.done.wait()
                await run.stop(grace=1.0)
            await run.done.wait()
    finally:
        store.failing = False  # type: ignore[attr-defined]
    assert (run.degraded is not None) == (fault is not None)
    return run.status


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    codes=st.fixed_dictionaries({n: st.sampled_from([0, 1, -9]) for n in EXIT_AT}),
    stop_at=st.none() | st.sampled_from([1.0, 3.0, 6.0, 20.0]),
    fault=st.sampled_from(["store", "logs"]),
)
async def test_status_with_an_auxiliary_fault_equals_status_without(
    make_run: RunMaker,
    autojump_clock: trio.testing.MockClock,
    codes: dict[str, int],
    stop_at: float | None,
    fault: str,
) -> None:
    plain = await result_of(make_run, codes, stop_at, None)
    assert await result_of(make_run, codes, stop_at, fault) is plain
    # and it is the result SPEC 5 gives: a node that failed before the stop fails the run
    failed = any(code and (stop_at is None or EXIT_AT[n] < stop_at) for n, code in codes.items())
    stopped = stop_at is not None and stop_at < max(EXIT_AT.values())
    expected = "failed" if failed else "stopped" if stopped else "succeeded"
    assert plain == expected
