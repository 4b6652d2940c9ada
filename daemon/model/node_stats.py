"""Node statistics reports: keep the latest, derive message rates from the one before. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node_sdk.channel import Stats

# what an input's rate counts: the messages handed to the node's code (node_sdk/latency.py),
# not those that arrived, some of which a full queue then drops (they are in `dropped`)
_IN = "delivered"


def merge_report(previous: dict[str, Any] | None, report: Stats, now: float) -> dict[str, Any]:
    """The stored statistics after `report` arrived at `now` (seconds, monotonic).

    `report` is the node's `stats` message, already bounded and checked by the channel's
    decoder: `inputs: {id: {received, delivered, bytes, dropped, queued, refused, latency_*}}`,
    `outputs: {id: {sent, dropped, bytes}}`. Rates are per second since the last report:
    inputs by id (messages `delivered` to the node's code, the ones its `bytes` count;
    `received` from a node too old to say), outputs as `out:<id>` (`sent`).
    """
    inputs = _copy(report.inputs)
    outputs = _copy(report.outputs)
    rates: dict[str, float] = {}
    if previous is not None and now > previous["at"]:
        span = now - previous["at"]
        for input_id, counters in inputs.items():
            before = previous["inputs"].get(input_id, {})
            key = _IN if _IN in counters else "received"
            delta = counters.get(key, 0) - before.get(key, 0)
            rates[input_id] = round(max(delta, 0) / span, 2)
        for output_id, counters in outputs.items():
            before = previous["outputs"].get(output_id, {})
            delta = counters.get("sent", 0) - before.get("sent", 0)
            rates[f"out:{output_id}"] = round(max(delta, 0) / span, 2)
    return {"at": now, "inputs": inputs, "outputs": outputs, "rates": rates}


def _copy(section: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Plain dicts: the stored statistics are served as JSON (`flow node info`, `flow top`)."""
    return {key: dict(counters) for key, counters in section.items()}


# a figure of the live process: over its last report interval (latency), or its state now
# (a queue): meaningless once the generation ended, unlike the totals that stay true
_CURRENT_INPUT_FIGURES = ("queued", "latency_count", "latency_p50_us", "latency_p99_us")


def ended(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The statistics of a generation that has ended: its totals (messages, bytes, drops),
    without a rate, a latency or a queue, which would be read as current (`flow top`)."""
    if stats is None:
        return None
    inputs = {
        input_id: {k: v for k, v in counters.items() if k not in _CURRENT_INPUT_FIGURES}
        for input_id, counters in stats["inputs"].items()
    }
    return {**stats, "inputs": inputs, "outputs": _copy(stats["outputs"]), "rates": {}}
