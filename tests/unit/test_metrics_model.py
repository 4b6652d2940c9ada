"""`--metrics` addresses and the samples of the Prometheus page (daemon/model/metrics.py)."""

from __future__ import annotations

import pytest

from daemon.model.metrics import (
    MetricsAddress,
    MetricsAddressError,
    NodeFacts,
    parse_metrics_address,
    samples,
)


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("9464", "127.0.0.1", 9464, True),
        (":0", "127.0.0.1", 0, True),
        ("localhost:9464", "localhost", 9464, True),
        ("0.0.0.0:9464", "0.0.0.0", 9464, False),
        ("[::1]:9464", "[::1]", 9464, True),
    ],
)
def test_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    address = parse_metrics_address(text)
    assert address == MetricsAddress(host, port)
    assert address.is_loopback is loopback


@pytest.mark.parametrize("text", ["", "nope", "example.com:80", "1.2.3.4:70000", "1.2.3.4:"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(MetricsAddressError, match="--metrics"):
        parse_metrics_address(text)


def test_samples_per_node_edge_and_output() -> None:
    stats = {
        "inputs": {"data": {"received": 5, "bytes": 50, "dropped": 1, "queued": 2,
                            "refused": 0, "latency_p50_us": 1500, "latency_p99_us": 9000}},
        "outputs": {"out": {"sent": 7, "dropped": 0}},
    }  # fmt: skip
    facts = NodeFacts(run="r", run_name="n", node="sink", running=True, restarts=2,
                      cpu_percent=12.5, rss_bytes=1000, sources={"data": "src/out"},
                      stats=stats)  # fmt: skip
    got = {(s.name, dict(s.labels).get("input") or dict(s.labels).get("output")): s.value
           for s in samples([facts])}  # fmt: skip
    assert got[("node_up", None)] == 1.0
    assert got[("node_restarts", None)] == 2.0
    assert got[("node_cpu_percent", None)] == 12.5
    assert got[("input_messages", "data")] == 5
    assert got[("input_latency_p99_seconds", "data")] == pytest.approx(0.009)
    assert got[("output_messages", "out")] == 7
    edge = next(s for s in samples([facts]) if s.name == "input_bytes")
    assert dict(edge.labels)["source"] == "src/out"
    idle = NodeFacts(run="r", run_name="", node="x", running=False, restarts=0,
                     cpu_percent=None, rss_bytes=None, sources={}, stats=None)  # fmt: skip
    assert [s.name for s in samples([idle])] == ["node_up", "node_restarts"]
