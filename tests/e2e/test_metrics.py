"""`flow up --metrics`: the Prometheus endpoint scraped over HTTP while a dataflow runs."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

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
    sent = value(page, "flow_output_messages_total", output="count", **counter)
    sent_bytes = value(page, "flow_output_bytes_total", output="count", **counter)
    assert sent
    assert sent_bytes is not None
    # the counter sends str(1), str(2), ...: the bytes of its first `sent` messages (the
    # report reads the byte count just after the message count, so a few more may be in)
    assert sum(len(str(i)) for i in range(1, int(sent) + 1)) <= sent_bytes
    assert sent_bytes <= sum(len(str(i)) for i in range(1, int(sent) + 6))
    assert value(page, "flow_node_up", **counter) == 1
    assert value(page, "flow_node_restarts_total", **counter) == 0
    assert value(page, "flow_node_memory_bytes", **counter) > 0  # type: ignore[operator]
    wait_for(lambda: value(scrape(url), "flow_node_cpu_percent", **counter) is not None,
             "a CPU figure (two samples)")  # fmt: skip
    assert "# HELP flow_input_latency_p99_seconds" in page
    # `flow node info` shows the same figures
    info = flow("node", "info", "scraped", "sink", home=home)
    assert "P99" in info.stdout
    out = flow("node", "info", "scraped", "counter", "--json", home=home)
    assert json.loads(out.stdout)["stats"]["outputs"]["count"]["bytes"] >= sent_bytes
    shown = flow("node", "info", "scraped", "counter", home=home)
    row = next(line for line in shown.stdout.splitlines() if "out count" in line)
    assert re.search(r"out count\s+\d+\s+\d+\s+0", row), shown.stdout  # MESSAGES BYTES DROPPED
    assert flow("stop", "scraped", home=home).returncode == 0


def test_a_scrape_flood_is_bounded_and_the_daemon_keeps_serving(
    metrics: tuple[Path, str],
) -> None:
    home, url = metrics
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    # 40 connections that never send a request: a scrape is still answered (each idle one
    # holds one of 64 places for 2 s at most, then gets a 408 and is closed)
    idle = [socket.create_connection((host, int(port)), timeout=BOUND_S) for _ in range(40)]
    try:
        started = time.monotonic()
        assert flow("status", home=home).returncode == 0  # the control socket still answers
        assert time.monotonic() - started < BOUND_S
        scrape(url)  # 200, the page (empty: no run)
        assert idle[0].recv(100).startswith(b"HTTP/1.1 408 ")  # within BOUND_S (its timeout)
        assert idle[-1].recv(1 << 16).endswith(b"no request within 2 s\n")
    finally:
        for sock in idle:
            sock.close()
    # past the 64 places: the next scrape is refused at once (503), until they go
    idle = [socket.create_connection((host, int(port)), timeout=BOUND_S) for _ in range(70)]
    try:
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


def test_a_busy_metrics_port_fails_the_start_in_one_line_of_its_own(flow_home: Path) -> None:
    """Only this start's cause is told, not earlier daemons' lines in daemon.log."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        for _ in range(2):  # the second start's log holds the first one's fatal line too
            done = flow("up", "--metrics", address, home=flow_home)
            assert done.returncode == 1, done.stdout
            assert done.stderr.count("\n") == 1, done.stderr
            assert f"could not start: metrics: cannot listen on {address}" in done.stderr


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps each POSTed body (protobuf) and answers 200."""

    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # quiet


def test_otlp_push_reaches_a_collector(flow_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk.metrics")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
    try:
        up = flow("up", "--otlp", url, home=flow_home,
                  env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "500"})  # fmt: skip
        assert up.returncode == 0, up.stderr
        start_stream(flow_home, tmp_path, "pushed", tick_ms=10)

        def edge_pushed() -> bool:
            return any(b"flow_input_messages" in body and b"counter/count" in body
                       and b"flow_input_latency_p99_seconds" in body
                       for _, body in _Collector.bodies)  # fmt: skip

        wait_for(edge_pushed, "an OTLP export with the sink's edge")
        assert {path for path, _ in _Collector.bodies} == {"/v1/metrics"}
        assert flow("stop", "pushed", home=flow_home).returncode == 0
    finally:
        daemon_down(flow_home)
        server.shutdown()
        server.server_close()


def test_otlp_to_a_collector_that_is_down_logs_less_and_less(
    flow_home: Path, tmp_path: Path
) -> None:
    """A collector that stays down: the 1st, 2nd, 4th, 8th, ... failed export is logged,
    with its count, not 3 lines every interval forever."""
    pytest.importorskip("opentelemetry.sdk.metrics")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1/metrics"
    log = flow_home / "daemon.log"
    try:
        up = flow("up", "--otlp", url, home=flow_home,
                  env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "200"})  # fmt: skip
        assert up.returncode == 0, up.stderr
        start_stream(flow_home, tmp_path, "unheard", tick_ms=20)
        deadline = time.monotonic() + 90  # each export retries for up to its 5 s timeout
        while "Failed to export metrics batch due to timeout, max retries or shutdown. [4 so far]" \
                not in log.read_text():  # fmt: skip
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        failed = [line for line in log.read_text().splitlines() if "Failed to export" in line]
        assert len(failed) == 3, failed  # the 1st, 2nd and 4th
        assert flow("stop", "unheard", home=flow_home).returncode == 0
    finally:
        daemon_down(flow_home)
