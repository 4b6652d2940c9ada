"""The receive side's bytes and latency counts (node_sdk/latency.py) and their report."""

from __future__ import annotations

import time

import pytest

from node_sdk import latency
from node_sdk.latency import BUCKETS, Traffic, upper_edge
from node_sdk.wire import KIND_BYTES


def _report_of(delay_ns: int, count: int = 1) -> dict[str, int]:
    return _timed_report_of(delay_ns, count)[0]


def _timed_report_of(delay_ns: int, count: int = 1) -> tuple[dict[str, int], float]:
    """The report, and the microseconds the notes took (the test process may be preempted
    between a stamp and its note: that much more latency is real)."""
    traffic = Traffic()
    began = time.perf_counter()
    for _ in range(count):
        traffic.note("in", time.time_ns() - delay_ns, KIND_BYTES, b"abcd")
    return traffic.report()["in"], (time.perf_counter() - began) * 1e6


@pytest.mark.parametrize("delay_ms", [0.02, 0.5, 3, 40, 700, 5000])
def test_a_delay_is_reported_within_a_quarter_above_it(delay_ms: float) -> None:
    report, took_us = _timed_report_of(int(delay_ms * 1e6))
    assert report["latency_count"] == 1
    # the clock moved on a little between the stamp and the note: never below the delay
    assert delay_ms * 1000 <= report["latency_p50_us"] + 1
    assert report["latency_p50_us"] <= (delay_ms * 1000 + took_us) * 1.25 + 50
    assert report["latency_p99_us"] == report["latency_p50_us"]


def test_percentiles_bytes_and_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    traffic = Traffic()
    now = time.time_ns()
    # the receive clock stands still: a loaded machine's slow loop adds no latency here
    monkeypatch.setattr(latency, "_now", lambda: now)
    for _ in range(98):
        traffic.note("in", now - 1_000_000, KIND_BYTES, b"x" * 10)  # ~1 ms
    for _ in range(2):
        traffic.note("in", now - 100_000_000, KIND_BYTES, b"x" * 10)  # ~100 ms
    traffic.note("other", now + 10**9, KIND_BYTES, b"")  # a clock ahead: counted as 0
    report = traffic.report()
    assert report["in"]["bytes"] == 1000
    assert report["in"]["delivered"] == 100  # the messages `bytes` counts
    assert report["in"]["latency_count"] == 100
    # a bucket's upper edge: within 25% above
    assert 1000 <= report["in"]["latency_p50_us"] <= 1250
    assert 100_000 <= report["in"]["latency_p99_us"] <= 125_000
    assert report["other"]["latency_p50_us"] == 0
    # the next interval starts empty; bytes go on adding up
    traffic.note("in", now, KIND_BYTES, b"yy")
    again = traffic.report()
    assert again["in"]["bytes"] == 1002
    assert again["in"]["latency_count"] == 1
    assert traffic.report() == {"in": {"delivered": 101, "bytes": 1002},
                                "other": {"delivered": 1, "bytes": 0}}  # fmt: skip


def test_bucket_edges_are_ordered_and_cover_every_delay() -> None:
    edges = [upper_edge(i) for i in range(8)] + [upper_edge(i) for i in range(16, BUCKETS)]
    assert edges == sorted(edges)
    assert upper_edge(BUCKETS - 1) >= 2**64 - 1


def test_a_shared_memory_payload_counts_its_size_not_its_descriptor() -> None:
    from node_sdk.latency import SHM_SIZE_AT
    from node_sdk.shm import DESCRIPTOR, DESCRIPTOR_MAGIC
    from node_sdk.wire import KIND_SHM

    descriptor = DESCRIPTOR.pack(DESCRIPTOR_MAGIC, KIND_BYTES, 3, 1, 5_000_000) + b"tail"
    assert int.from_bytes(descriptor[SHM_SIZE_AT], "little") == 5_000_000
    traffic = Traffic()
    traffic.note("in", time.time_ns(), KIND_SHM, memoryview(descriptor))
    assert traffic.report()["in"]["bytes"] == 5_000_000
