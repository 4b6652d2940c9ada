"""What each input delivered to the node's code, measured there: messages, their bytes, and
send-to-receive latency.

The latency of a message is the receiving node's wall clock when the message is handed to
user code minus the sender's `timestamp` (both `time.time_ns()`: one host's clock; across
machines their offset is in it). It is counted in a small fixed histogram per input, so
the receive path pays one clock read, a few integer operations and two increments. Every
report (a second) takes the histogram of the last interval and starts a new one; p50 and
p99 are read from it, each the upper edge of its bucket: within 25% of the true value.
"""

from __future__ import annotations

import time
from typing import Any, Final

from node_sdk.wire import KIND_SHM

# bucket of a delay d (ns): d itself below 8; above, 4 buckets per power of two, keyed by
# the bit length of d and the two bits after its top bit (d < 2**64: at most 4*64+3)
BUCKETS: Final = 4 * 65
BYTES: Final = BUCKETS  # the last slot of a histogram list: bytes of the interval
# where a shared-memory descriptor (shm.DESCRIPTOR, "<4sBxxxIIQ") keeps the payload's size:
# read here without importing shm, which a node that never gets a large payload never loads
SHM_SIZE_AT: Final = slice(16, 24)
_now = time.time_ns


def upper_edge(index: int) -> int:
    """The largest delay (ns) that falls in bucket `index`."""
    if index < 8:
        return index
    bits, low = index >> 2, index & 3
    return ((5 + low) << (bits - 3)) - 1


class Traffic:
    """Per input: the latency histogram and bytes of the interval (one list), and messages
    and bytes since the start. `note` runs on the node's thread; `report` (the receiver
    thread) swaps the lists out whole, so at most a message in flight is counted in the next
    interval."""

    __slots__ = ("bytes", "delivered", "histograms")

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}  # written by `report` only
        self.delivered: dict[str, int] = {}  # likewise: messages (the histograms' counts)
        self.histograms: dict[str, list[int]] = {}

    def note(self, input_id: str, stamp: int, kind: int, payload: Any) -> None:
        """One message handed to user code (the hot path: no call but the clock's). A
        negative delay (another host's clock ahead) counts as 0."""
        histogram = self.histograms.get(input_id)
        if histogram is None:
            histogram = self.histograms[input_id] = [0] * (BUCKETS + 1)
        delay = _now() - stamp
        if delay >= 8:
            bits = delay.bit_length()
            histogram[(bits << 2) | ((delay >> (bits - 3)) & 3)] += 1
        else:
            histogram[delay if delay > 0 else 0] += 1
        if kind == KIND_SHM:
            histogram[BYTES] += int.from_bytes(payload[SHM_SIZE_AT], "little")
        else:
            histogram[BYTES] += len(payload)

    def report(self) -> dict[str, dict[str, int]]:
        """Per input: `delivered` (messages handed to the node's code) and their `bytes`
        since the start, and over the last interval `latency_count` and, when it is not 0,
        `latency_p50_us` and `latency_p99_us` (the node channel's integer counters)."""
        histograms, self.histograms = self.histograms, {}
        totals, delivered = self.bytes, self.delivered
        counts = {input_id: sum(h) - h[BYTES] for input_id, h in histograms.items()}
        for input_id, histogram in histograms.items():
            totals[input_id] = totals.get(input_id, 0) + histogram[BYTES]
            delivered[input_id] = delivered.get(input_id, 0) + counts[input_id]
        out = {
            input_id: {"delivered": delivered[input_id], "bytes": total}
            for input_id, total in totals.items()
        }
        for input_id, histogram in histograms.items():
            entry = out[input_id]
            count = counts[input_id]
            entry["latency_count"] = count
            if count:
                entry["latency_p50_us"] = _quantile(histogram, count, 0.5) // 1000
                entry["latency_p99_us"] = _quantile(histogram, count, 0.99) // 1000
        return out


def _quantile(histogram: list[int], count: int, q: float) -> int:
    """The upper edge (ns) of the bucket holding the q-th of `count` delays."""
    rank = max(1, int(count * q + 0.999999))  # the smallest k with k >= count * q
    seen = 0
    for index in range(BUCKETS):
        seen += histogram[index]
        if seen >= rank:
            return upper_edge(index)
    return upper_edge(BUCKETS - 1)
