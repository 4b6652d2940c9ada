"""`python -m bench --rounds N`: several runs of a payload row become one of medians."""

from __future__ import annotations

from typing import Any

from bench.measure import median_of, summarize


def run(lost: int, p50: float | None, rate: float | None) -> dict[str, Any]:
    return {"lost": lost, "2ms": {"p50_us": p50, "cpu_send_us": 10.0},
            "burst": {"p50_us": 1.0, "msgs_per_s": rate}}  # fmt: skip


def test_each_figure_is_the_median_and_every_loss_counts() -> None:
    got = median_of([run(0, 120.0, 60_000.0), run(2, 100.0, 106_000.0), run(0, 300.0, 69_000.0)])
    assert got["rounds"] == 3
    assert got["lost"] == 2  # a loss in any run is one
    assert got["2ms"] == {"p50_us": 120.0, "cpu_send_us": 10.0}
    assert got["burst"]["msgs_per_s"] == 69_000.0


def test_a_figure_missing_from_some_runs_is_the_median_of_the_others() -> None:
    got = median_of([run(0, None, 50.0), run(0, 10.0, None), run(0, 30.0, None)])
    assert got["2ms"]["p50_us"] == 20.0
    assert got["burst"]["msgs_per_s"] == 50.0
    assert median_of([run(0, None, None)])["2ms"]["p50_us"] is None


def test_a_burst_that_lost_messages_has_no_rate_but_the_rate_of_what_came() -> None:
    # two paced messages 10 ms apart, then a burst of 4 sent 1 ms apart from t = 1 s
    sent = [0, 10_000_000, *(1_000_000_000 + i * 1_000_000 for i in range(4))]
    send = {"stamps": sent, "cpu_s": [0.0, 0.0]}
    whole = {"expected": 6, "received": 6, "gaps": 0, "cpu_at": {},
             "stamps": [t + 100_000 for t in sent]}  # fmt: skip
    # a paced message and one of the burst lost: 3 of the burst came, the last at 1.0041 s
    lossy = {**whole, "received": 4, "stamps": [100_000, *(t + 100_000 for t in sent[3:])]}
    paced = [(2, 0.01)]
    got = summarize(send, [whole], paced, 4)["burst"]
    assert got["msgs_per_s"] == got["delivered_per_s"] == 4 / 0.0031
    got = summarize(send, [lossy], paced, 4)
    assert got["lost"] == 2
    assert got["burst"]["msgs_per_s"] is None
    assert got["burst"]["delivered_per_s"] == 3 / 0.0031
