"""Statistics reports: rates from successive reports; malformed counters are ignored."""

from __future__ import annotations

from daemon.model.node_stats import merge_report


def report(received: int, sent: int) -> dict:
    return {
        "t": "stats",
        "inputs": {"data": {"received": received, "dropped": 1, "queued": 2, "refused": 0}},
        "outputs": {"out": {"sent": sent, "dropped": 0}},
    }


def test_first_report_has_no_rates() -> None:
    merged = merge_report(None, report(10, 5), now=100.0)
    assert merged["rates"] == {}
    assert merged["inputs"]["data"]["queued"] == 2


def test_rates_are_per_second_since_the_last_report() -> None:
    first = merge_report(None, report(10, 5), now=100.0)
    second = merge_report(first, report(60, 25), now=102.0)
    assert second["rates"] == {"data": 25.0, "out:out": 10.0}


def test_malformed_counters_are_dropped() -> None:
    merged = merge_report(None, {"inputs": {"x": {"received": "many", "ok": 3}, 4: {}}}, 1.0)
    assert merged["inputs"] == {"x": {"ok": 3}}
    assert merged["outputs"] == {}
