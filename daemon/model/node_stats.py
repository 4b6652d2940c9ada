"""Node statistics reports: keep the latest, derive message rates from the one before. Pure."""

from __future__ import annotations

from typing import Any


def merge_report(
    previous: dict[str, Any] | None, report: dict[str, Any], now: float
) -> dict[str, Any]:
    """The stored statistics after `report` arrived at `now` (seconds, monotonic).

    `report` is the node's `stats` message: `inputs: {id: {received, dropped, queued,
    refused}}`, `outputs: {id: {sent, dropped}}`. Rates are per second since the last
    report: inputs by id, outputs as `out:<id>`.
    """
    inputs = _counters(report.get("inputs"))
    outputs = _counters(report.get("outputs"))
    rates: dict[str, float] = {}
    if previous is not None and now > previous["at"]:
        span = now - previous["at"]
        for input_id, counters in inputs.items():
            before = previous["inputs"].get(input_id, {})
            delta = counters.get("received", 0) - before.get("received", 0)
            rates[input_id] = round(max(delta, 0) / span, 2)
        for output_id, counters in outputs.items():
            before = previous["outputs"].get(output_id, {})
            delta = counters.get("sent", 0) - before.get("sent", 0)
            rates[f"out:{output_id}"] = round(max(delta, 0) / span, 2)
    return {"at": now, "inputs": inputs, "outputs": outputs, "rates": rates}


def _counters(section: Any) -> dict[str, dict[str, int]]:
    """Only well-formed counters survive: a node's report is not trusted blindly."""
    if not isinstance(section, dict):
        return {}
    clean: dict[str, dict[str, int]] = {}
    for key, counters in section.items():
        if isinstance(key, str) and isinstance(counters, dict):
            clean[key] = {
                str(name): int(value)
                for name, value in counters.items()
                if isinstance(value, int) and not isinstance(value, bool)
            }
    return clean
