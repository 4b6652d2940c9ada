"""What one measured run is made of (sizes, kinds, message counts) and what it comes to.

A run is paced phases (2 ms, then 10 ms between messages) and a burst. The sender keeps
each message's stamp and its CPU time per phase; each receiver keeps each arrival's stamp
and its CPU time at every phase's first and last message (bench/nodes). Latency pairs
the i-th sent with the i-th received message: nothing reorders, and `lost` (missing
messages plus sequence gaps) says when a row cannot be trusted.
"""

from __future__ import annotations

import resource
import statistics
from typing import Any

KIB, MIB = 1024, 1024 * 1024
DORA_MAX = 5_120_000 * 8  # dora's own benchmark: np.uint64 arrays of 1 to 5,120,000 elements
SIZES = [8, KIB, 64 * KIB, MIB, 4 * MIB, DORA_MAX]
DORA_SIZES = [8 * n for n in (1, 5_120, 51_200, 512_000, 5_120_000)]
KINDS = ["bytes", "numpy", "arrow", "struct"]
PACINGS_S = (0.002, 0.01)
SHM_THRESHOLD = 64 * KIB  # flow's default: at or above it, payloads go by shared memory
# size at most -> (messages at each pacing, burst messages)
FULL = [
    (KIB, (300, 150), 20000),
    (64 * KIB, (300, 150), 3000),
    (MIB, (200, 100), 300),
    (4 * MIB, (100, 60), 80),
    (1 << 62, (30, 20), 15),
]


def counts(size: int, quick: bool, scale: float) -> tuple[list[tuple[int, float]], int]:
    """The paced phases [(messages, interval s)] and the burst's count for one size."""
    if quick:
        return [(5, interval) for interval in PACINGS_S], 10
    for top, paced, burst in FULL:
        if size <= top:
            phases = [(max(5, int(n * scale)), s) for n, s in zip(paced, PACINGS_S, strict=True)]
            return phases, max(10, int(burst * scale))
    raise AssertionError("FULL ends with an unbounded size")


def label(size: int) -> str:
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= MIB:
        return f"{size / 1e6:g} MB"
    if size >= KIB:
        return f"{size // KIB} KiB" if size % KIB == 0 else f"{size / 1e3:.0f} kB"
    return f"{size} B"


def pace_label(interval_s: float) -> str:
    return f"{interval_s * 1000:g}ms"


def _percentile(values: list[int], q: float) -> float | None:
    return values[min(len(values) - 1, int(len(values) * q))] / 1000 if values else None


def summarize(
    send: dict[str, Any], recvs: list[dict[str, Any]], paced: list[tuple[int, float]],
    burst: int,
) -> dict[str, Any]:  # fmt: skip
    """Latency, rate and CPU per message of one run (several receivers: fan-out)."""
    sent = send["stamps"]
    out: dict[str, Any] = {
        "lost": sum(r["expected"] - r["received"] + r["gaps"] for r in recvs),
    }
    start = 0
    phases = [(pace_label(s), n) for n, s in paced] + [("burst", burst)]
    for index, (name, count) in enumerate(phases):
        end = start + count
        lat: list[int] = []
        recv_cpu: list[float] = []
        rates: list[float] = []
        delivered: list[float] = []
        for recv in recvs:
            got = recv["stamps"]
            lat.extend(got[i] - sent[i] for i in range(start, min(end, len(got), len(sent))))
            at = {int(k): v for k, v in recv["cpu_at"].items()}
            if start in at and end - 1 in at and count > 1:
                recv_cpu.append((at[end - 1] - at[start]) / (count - 1) * 1e6)
            if name == "burst" and len(got) >= end and count:
                seconds = (got[end - 1] - sent[start]) / 1e9
                rates.append(count / seconds if seconds > 0 else 0.0)
                delivered.append(rates[-1])
            elif name == "burst" and count and len(sent) > start:
                # lost some: what arrived after the burst's first send is the burst's (the
                # paced phases ended an interval before it), whichever messages were lost
                came = [t for t in got if t >= sent[start]]
                seconds = (came[-1] - sent[start]) / 1e9 if came else 0.0
                delivered.append(len(came) / seconds if seconds > 0 else 0.0)
        lat.sort()
        out[name] = {
            "p50_us": statistics.median(lat) / 1000 if lat else None,
            "p99_us": _percentile(lat, 0.99),
            "cpu_send_us": send["cpu_s"][index] / count * 1e6 if count else None,
            "cpu_recv_us": statistics.mean(recv_cpu) if recv_cpu else None,
        }
        if name == "burst":
            out[name]["msgs_per_s"] = min(rates) if rates else None  # the slowest receiver
            # the same where nothing was lost; where something was, the rate of what came
            out[name]["delivered_per_s"] = min(delivered) if delivered else None
        start = end
    return out


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one row as one: the median of each figure (a burst's rate moves by a
    third from one run to the next on two shared cores), and `lost` summed; `rounds` says
    how many. A figure that is None in every run stays None."""
    out: dict[str, Any] = {"lost": sum(run["lost"] for run in runs), "rounds": len(runs)}
    for phase in (k for k, v in runs[0].items() if isinstance(v, dict)):
        figures: dict[str, Any] = {}
        for key in runs[0][phase]:
            values = [run[phase][key] for run in runs if run[phase][key] is not None]
            figures[key] = statistics.median(values) if values else None
        out[phase] = figures
    return out


def children_cpu() -> float:
    """User + system seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
