"""Statistics reports: rates from successive reports, stored as plain JSON-ready dicts."""

from __future__ import annotations

import json
from types import MappingProxyType

from daemon.model.node_stats import ended, merge_report
from node_sdk.channel import Stats


def report(received: int, sent: int) -> Stats:
    return Stats(
        {"data": {"received": received, "dropped": 1, "queued": 2, "refused": 0}},
        {"out": {"sent": sent, "dropped": 0}},
    )


def test_first_report_has_no_rates() -> None:
    merged = merge_report(None, report(10, 5), now=100.0)
    assert merged["rates"] == {}
    assert merged["inputs"]["data"]["queued"] == 2


def test_rates_are_per_second_since_the_last_report() -> None:
    first = merge_report(None, report(10, 5), now=100.0)
    second = merge_report(first, report(60, 25), now=102.0)
    assert second["rates"] == {"data": 25.0, "out:out": 10.0}


def test_counters_are_copied_into_plain_dicts() -> None:
    counters = {"received": 3}
    merged = merge_report(None, Stats(MappingProxyType({"x": counters}), {}), 1.0)
    counters["received"] = 99  # the report is not kept by reference
    assert merged["inputs"] == {"x": {"received": 3}}
    assert merged["outputs"] == {}
    json.dumps(merged)


def test_an_ended_generation_keeps_its_totals_and_nothing_current() -> None:
    live = merge_report(merge_report(None, report(10, 5), 100.0), report(60, 25), 102.0)
    live["inputs"]["data"] |= {"latency_count": 50, "latency_p50_us": 300, "latency_p99_us": 900}
    shown = ended(live)
    assert shown is not None
    assert shown["rates"] == {}
    assert shown["inputs"] == {"data": {"received": 60, "dropped": 1, "refused": 0}}
    assert shown["outputs"] == {"out": {"sent": 25, "dropped": 0}}
    assert live["rates"] == {"data": 25.0, "out:out": 10.0}  # the live ones are kept as they are
    assert ended(None) is None


def test_an_input_rate_counts_the_messages_delivered_when_the_node_says() -> None:
    """Not those that arrived: a full queue drops some of them (`dropped` has those)."""
    def counted(received: int, delivered: int) -> Stats:
        return Stats({"data": {"received": received, "delivered": delivered}}, {})

    first = merge_report(None, counted(10, 10), now=100.0)
    second = merge_report(first, counted(110, 30), now=102.0)
    assert second["rates"] == {"data": 10.0}
