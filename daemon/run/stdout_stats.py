"""A node's `send_stdout_as` statistics, which its keeper counts, in the node's `slot.stats`.

The keeper sends a node's stdout lines, so it counts them (`stdout_stats`, daemon/keeper/
stdout_counts.py) and they are merged by the same `merge_report` as an SDK node's own
`stats`. A process node has no report of its own: the keeper's is merged as it comes. A
node that has one (a Python node with `send_stdout_as`) reports every second; the keeper's
counts of its generation wait in its slot and go into its next report, so that the rates
of its other outputs are always taken over one report's span.
"""

from __future__ import annotations

import time

from daemon.model.keeper_messages import OutputCounts, StdoutStats
from daemon.model.node_stats import merge_report
from daemon.run.slot import NodeSlot
from node_sdk.channel import Stats


def merge_stdout_stats(slots: dict[str, NodeSlot], message: StdoutStats) -> None:
    """The counts of each output into its node's slot; an older generation's are stale."""
    now = time.monotonic()
    for counts in message.outputs:
        slot = slots.get(counts.node)
        if slot is None or counts.generation != slot.generation:
            continue
        if counts.output != slot.spec.send_stdout_as:
            continue  # not the output the keeper sends for it (a keeper that lost track)
        if slot.spec.connects:
            slot.stdout_counts = counts
        else:
            slot.stats = merge_report(slot.stats, Stats({}, _outputs(counts)), now)


def with_stdout_counts(slot: NodeSlot, report: Stats) -> Stats:
    """A node's own report with its keeper's latest counts of this generation's lines."""
    counts = slot.stdout_counts
    if counts is None or counts.generation != slot.generation:
        return report
    return Stats(report.inputs, {**report.outputs, **_outputs(counts)}, report.away_ms)


def _outputs(counts: OutputCounts) -> dict[str, dict[str, int]]:
    """The output's counters as a `stats` report gives them."""
    values = {"sent": counts.sent, "dropped": counts.dropped, "bytes": counts.bytes}
    return {counts.output: values}
