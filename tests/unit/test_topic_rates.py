"""`flow topic hz`'s rate window: rates from send stamps, only what was sent after wiring;
`flow topic echo`'s count of what it skipped."""

from __future__ import annotations

from cli.commands.topic_watch import RateWindow, Skipped

PERIOD_NS = 33_333_333  # 30 Hz
SINCE_NS = 10**18


def test_messages_sent_before_the_observer_are_not_counted() -> None:
    rates = RateWindow(5.0, SINCE_NS)
    # five queued frames sent before the observer was wired arrive in one burst first
    assert not any(rates.add(SINCE_NS - k * PERIOD_NS) for k in range(5, 0, -1))
    for k in range(31):
        assert rates.add(SINCE_NS + k * PERIOD_NS)
    summary = rates.summary()
    assert summary is not None
    assert summary.startswith("rate 30.00/s")
    assert "window 31 msgs" in summary
    assert rates.overall() == "31 messages in 1.00 s: rate 30.00/s"


def test_the_window_keeps_only_its_span_and_needs_two_messages() -> None:
    rates = RateWindow(1.0, 0)
    assert rates.summary() is None
    rates.add(PERIOD_NS)
    assert rates.summary() is None
    assert rates.overall() == "1 messages: too few to time"
    for k in range(2, 91):  # three seconds at 30 Hz
        rates.add(k * PERIOD_NS)
    rates.trim(90 * PERIOD_NS)
    assert len(rates.stamps) == 31  # the last second only (both ends included)
    assert rates.total == 90
    rates.trim(200 * PERIOD_NS)  # the sender went quiet: nothing left to time
    assert rates.summary() is None


def test_skipped_counts_gaps_within_a_generation_only() -> None:
    skipped = Skipped("n/out")
    skipped.said_at = float("inf")  # hold what it counts, to read it here
    for generation, seq in ((1, 1), (1, 2), (1, 5), (2, 1), (2, 2), (2, 10)):
        skipped.see(generation, seq)
    assert skipped.pending == 2 + 7  # a new generation numbers from 1: no gap there
    skipped.see(2, 11)  # an end-of-stream right after its last message (seq 10 + 1)
    assert skipped.pending == 9
