"""`flow up --metrics`: the Prometheus endpoint scraped over HTTP while a dataflow runs."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BOUND_S, daemon_down, flow, start_stream, wait_for


@pytest.fixture
def metrics(flow_home: Path) -> Iterator[tuple[Path, str]]:
    """A daemon serving metrics on a free loopback port: (home, URL of /metrics)."""
    done = flow("up", "--metrics", "127.0.0.1:0", home=flow_home)
    assert done.returncode == 0, done.stderr
    try:
        status = flow("status", home=flow_home)
        found = re.search(r"metrics:\s+(http://\S+)", status.stdout)
        assert found, status.stdout
        yield flow_home, found.group(1)
    finally:
        daemon_down(flow_home)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=BOUND_S) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(reply.read().decode())


def value(page: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in page.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{text}"' in line for key, text in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_endpoint_lists_per_edge_and_per_node_figures(
    metrics: tuple[Path, str], tmp_path: Path
) -> None:
    home, url = metrics
    start_stream(home, tmp_path, "scraped", tick_ms=10)
    edge = {"node": "sink", "input": "data", "source": "counter/count", "run_name": "scraped"}
    page = ""

    def edge_is_there() -> bool:
        nonlocal page
        page = scrape(url)
        received = value(page, "flow_input_messages_total", **edge)
        return bool(received) and value(page, "flow_input_latency_p99_seconds", **edge) is not None

    wait_for(edge_is_there, "the sink's input with messages and latency")
    p50 = value(page, "flow_input_latency_p50_seconds", **edge)
    p99 = value(page, "flow_input_latency_p99_seconds", **edge)
    assert p50 is not None
    assert p99 is not None
    assert 0 <= p50 <= p99 < 60
    assert value(page, "flow_input_bytes_total", **edge) > 0  # type: ignore[operator]
    assert value(page, "flow_input_dropped_total", **edge) == 0
    assert value(page, "flow_input_queue_depth", **edge) is not None
    counter = {"node": "counter", "run_name": "scraped"}
    assert value(page, "flow_output_messages_total", output="count", **counter) > 0  # type: ignore[operator]
    assert value(page, "flow_node_up", **counter) == 1
    assert value(page, "flow_node_restarts_total", **counter) == 0
    assert value(page, "flow_node_memory_bytes", **counter) > 0  # type: ignore[operator]
    wait_for(lambda: value(scrape(url), "flow_node_cpu_percent", **counter) is not None,
             "a CPU figure (two samples)")  # fmt: skip
    assert "# HELP flow_input_latency_p99_seconds" in page
    # `flow node info` shows the same figures
    info = flow("node", "info", "scraped", "sink", home=home)
    assert "P99" in info.stdout
    assert flow("stop", "scraped", home=home).returncode == 0


def test_a_scrape_flood_is_bounded_and_the_daemon_keeps_serving(
    metrics: tuple[Path, str],
) -> None:
    home, url = metrics
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    # connections that never send a request: held at most CLIENT_S each, 8 at a time
    idle = [socket.create_connection((host, int(port)), timeout=BOUND_S) for _ in range(40)]
    try:
        started = time.monotonic()
        assert flow("status", home=home).returncode == 0  # the control socket still answers
        assert time.monotonic() - started < BOUND_S
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(url, timeout=BOUND_S)
        busy.value.close()
        assert busy.value.code == 503
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: _ok(url), "a scrape answered again once the idle connections left")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=BOUND_S)
    missing.value.close()
    assert missing.value.code == 404


def _ok(url: str) -> bool:
    try:
        scrape(url)
    except urllib.error.HTTPError as refused:
        refused.close()
        return False
    return True


def test_a_bad_metrics_address_is_one_line(flow_home: Path) -> None:
    for bad in ("nope", "host.example:9464", "127.0.0.1:99999"):
        done = flow("up", "--metrics", bad, home=flow_home)
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "--metrics" in done.stderr
