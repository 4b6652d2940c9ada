"""Telemetry, pure: the `--metrics ADDR:PORT` address, and the samples of every node and edge
of the live runs, computed from their statistics reports (docs/telemetry.md)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

LOOPBACK: Final = "127.0.0.1"
_ADDRESS_RE: Final = re.compile(r"(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})")


class MetricsAddressError(ValueError):
    """A `--metrics` value that cannot be listened on (one line)."""


@attrs.frozen
class MetricsAddress:
    """Where the daemon serves `/metrics`: loopback unless another address is given."""

    host: str
    port: int  # 0: any free port (the daemon says which in `flow status`)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


def parse_metrics_address(text: str) -> MetricsAddress:
    """`PORT`, `:PORT` (both on 127.0.0.1), `ADDR:PORT` or `[V6]:PORT`."""
    match = _ADDRESS_RE.fullmatch(text.strip())
    if match is None:
        raise MetricsAddressError(f"--metrics {text[:80]!r}: expected ADDR:PORT or PORT")
    host, port = match.group(1) or LOOPBACK, int(match.group(2))
    if port > 65535:
        raise MetricsAddressError(f"--metrics {text[:80]!r}: port {port} out of range")
    if not host.startswith("[") and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise MetricsAddressError(
                f"--metrics {text[:80]!r}: give an IP address (or localhost), not a name"
            ) from None
    return MetricsAddress(host=host, port=port)


@attrs.frozen
class Telemetry:
    """`serve --metrics ADDR:PORT --otlp URL`: where the daemon serves and pushes."""

    address: MetricsAddress | None = None
    otlp: str | None = None


def check_otlp_url(text: str) -> str:
    """An OTLP/HTTP metrics URL (`http://host:4318/v1/metrics`), or one line."""
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text) or len(text) > 1024:
        raise MetricsAddressError(f"--otlp {text[:80]!r}: expected http(s)://HOST:PORT/v1/metrics")
    return text


@attrs.frozen
class Sample:
    """One value of one metric: `name` (without the `flow_` prefix), labels, value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@attrs.frozen
class NodeFacts:
    """What the daemon knows of one node when the samples are taken."""

    run: str
    run_name: str
    node: str
    running: bool
    restarts: int
    cpu_percent: float | None
    rss_bytes: int | None
    sources: Mapping[str, str]  # input id -> its source(s), as written
    stats: Mapping[str, Any] | None  # the node's latest report (daemon/model/node_stats.py)


# input counter -> (metric name, scale): counters end in `_total` in the exposition
INPUT_COUNTERS: Final = {
    "received": ("input_messages", 1.0),
    "delivered": ("input_delivered", 1.0),
    "bytes": ("input_bytes", 1.0),
    "dropped": ("input_dropped", 1.0),
}
INPUT_GAUGES: Final = {
    "queued": ("input_queue_depth", 1.0),
    "latency_p50_us": ("input_latency_p50_seconds", 1e-6),
    "latency_p99_us": ("input_latency_p99_seconds", 1e-6),
}
OUTPUT_COUNTERS: Final = {
    "sent": ("output_messages", 1.0),
    "bytes": ("output_bytes", 1.0),
    "dropped": ("output_dropped", 1.0),
}


def samples(nodes: Iterable[NodeFacts]) -> list[Sample]:
    """Every sample of these nodes: per node, per input (an edge: its source -> the input)
    and per output."""
    out: list[Sample] = []
    for facts in nodes:
        node = (("run", facts.run), ("run_name", facts.run_name), ("node", facts.node))
        out.append(Sample("node_up", node, 1.0 if facts.running else 0.0))
        out.append(Sample("node_restarts", node, float(facts.restarts)))
        if facts.cpu_percent is not None:
            out.append(Sample("node_cpu_percent", node, facts.cpu_percent))
        if facts.rss_bytes is not None:
            out.append(Sample("node_memory_bytes", node, float(facts.rss_bytes)))
        stats = facts.stats or {}
        for input_id, counters in sorted((stats.get("inputs") or {}).items()):
            edge = (*node, ("input", input_id), ("source", facts.sources.get(input_id, "")))
            for key, (name, scale) in (INPUT_COUNTERS | INPUT_GAUGES).items():
                if key in counters:
                    out.append(Sample(name, edge, counters[key] * scale))
        for output_id, counters in sorted((stats.get("outputs") or {}).items()):
            port = (*node, ("output", output_id))
            for key, (name, scale) in OUTPUT_COUNTERS.items():
                if key in counters:
                    out.append(Sample(name, port, counters[key] * scale))
    return out


COUNTERS: Final = frozenset(
    name for name, _ in (*INPUT_COUNTERS.values(), *OUTPUT_COUNTERS.values())
) | {"node_restarts"}
HELP: Final = {
    "node_up": "1 while the node's process runs",
    "node_restarts": "restarts of the node in this run",
    "node_cpu_percent": "CPU of the node's process since the last sample, percent of one core",
    "node_memory_bytes": "resident memory of the node's process",
    "input_messages": "messages that arrived on the input (this generation of the node)",
    "input_delivered": "messages handed to the node's code on the input (input_bytes: theirs)",
    "input_bytes": "payload bytes of the messages handed to the node's code on the input",
    "input_dropped": "messages lost on the input (queue overflow, gaps upstream)",
    "input_queue_depth": "messages waiting in the input's queue",
    "input_latency_p50_seconds": "median send-to-receive latency over the last report interval",
    "input_latency_p99_seconds": "99th percentile send-to-receive latency, last report interval",
    "output_messages": "messages the node sent on the output, each once however many edges",
    "output_bytes": "payload bytes of the messages sent on the output, each message once",
    "output_dropped": "messages not sent on an edge whose queue was full, summed over edges",
}
