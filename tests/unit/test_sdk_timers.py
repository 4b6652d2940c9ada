"""Timer inputs: ticks at start + k * period, late ticks skipped, never bursted."""

from __future__ import annotations

from node_sdk.timers import Timer, Timers

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


def test_ticks_follow_the_schedule_without_drift() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    timers.start([("tick", 10 * MS)])
    fired = []
    for _ in range(100):
        clock.now += 3 * MS + 1  # polled at an awkward rate: drift would accumulate
        fired += timers.due()
    # 100 polls of 3 ms + 1 ns cover 300 ms + 100 ns: exactly 30 deadlines passed
    assert fired == ["tick"] * 30


def test_a_late_tick_fires_once_and_skips_the_missed_ones() -> None:
    clock = FakeClock()
    timer = Timer("tick", 10 * MS, clock.now)
    assert not timer.fire(clock.now + 9 * MS)
    assert timer.fire(clock.now + 55 * MS)  # ticks 1..5 were due: one fires
    assert timer.skipped == 4
    assert timer.deadline == clock.now + 60 * MS  # back on the grid, not now + period
    assert not timer.fire(clock.now + 59 * MS)
    assert timer.fire(clock.now + 60 * MS)
    assert (timer.ticks, timer.skipped) == (2, 4)


def test_several_timers_fire_in_deadline_order_and_report_the_next_wait() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    assert timers.seconds_to_next() is None
    timers.start([("slow", 30 * MS), ("fast", 20 * MS)])
    assert timers.seconds_to_next() == 0.02
    clock.now += 30 * MS
    assert timers.due() == ["fast", "slow"]
    assert timers.seconds_to_next() == 0.01  # fast is due again at 40 ms
    clock.now += 100 * MS
    assert timers.seconds_to_next() == 0


def test_first_tick_at_once_then_on_the_same_grid() -> None:
    """dora's timers (the `dora` module's Node): tick 0 at the start, then every period."""
    clock = FakeClock()
    timers = Timers(clock, first_at_once=True)
    timers.start([("tick", 10 * MS)])
    assert timers.due() == ["tick"]
    assert timers.due() == []
    assert timers.seconds_to_next() == 10 * MS / 1e9
    clock.now += 10 * MS
    assert timers.due() == ["tick"]
    late = Timers(clock)  # flow's own: one period later
    late.start([("tick", 10 * MS)])
    assert late.due() == []
