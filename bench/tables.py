"""The bench's report as Markdown tables, and the targets of issue 14 checked on it."""

from __future__ import annotations

from typing import Any

from bench import start
from bench.measure import KIB, PACINGS_S, pace_label

SYSTEMS = ("raw", "flow", "dora")
BUFFER = "flow-buffer"  # flow's sender writing in place (`send_output_buffer`)


def _num(v: float | None, fmt: str = "{:.0f}") -> str:
    return fmt.format(v) if v is not None else "-"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _get(result: dict[str, Any] | None, phase: str, key: str) -> float | None:
    return (result or {}).get(phase, {}).get(key)


def _three(by: dict[str, Any], flow: str, phase: str, key: str, fmt: str = "{:.0f}") -> str:
    return "/".join(_num(_get(by.get(s if s != "flow" else flow), phase, key), fmt)
                    for s in SYSTEMS)  # fmt: skip


def _bursts(by: dict[str, Any], flow: str) -> str:
    """raw/flow/dora burst rates; in parentheses, a system's that lost messages (the rate of
    what came, `delivered_per_s`)."""
    cells = []
    for system in SYSTEMS:
        result = by.get(system if system != "flow" else flow)
        rate, came = _get(result, "burst", "msgs_per_s"), _get(result, "burst", "delivered_per_s")
        cells.append(f"({came:.0f})" if rate is None and came is not None else _num(rate))
    return "/".join(cells)


def kind_table(rows: dict[str, dict[str, Any]]) -> str:
    """One payload kind: a row per size (and per size sent in place), raw/flow/dora."""
    fast, slow = (pace_label(s) for s in PACINGS_S)
    head = (f"| size | p50 us @{fast} raw/flow/dora | flow/raw | p50 us @{slow} raw/flow/dora"
            " | flow/raw | burst msg/s raw/flow/dora | flow/raw | CPU us/msg send "
            f"@{fast} | CPU us/msg recv @{fast} | CPU us/msg send burst | CPU us/msg recv "
            "burst | CPU flow/raw send/recv @2ms; burst | lost raw/flow/dora |")  # fmt: skip
    out = [head, "|" + "---|" * 13]
    for size_label, by in rows.items():
        for flow, suffix in (("flow", ""), (BUFFER, " in place")):
            if flow not in by:
                continue
            raw, mine = by.get("raw"), by.get(flow)

            def ratio(phase: str, key: str, mine: Any = mine, raw: Any = raw) -> str:
                return _ratio(_get(mine, phase, key), _get(raw, phase, key))

            cpu = "; ".join(
                f"{ratio(p, 'cpu_send_us')}/{ratio(p, 'cpu_recv_us')}" for p in (fast, "burst")
            )
            lost = "/".join(str((by.get(s if s != "flow" else flow) or {}).get("lost", "-"))
                            for s in SYSTEMS)  # fmt: skip
            out.append(
                f"| {size_label}{suffix} | {_three(by, flow, fast, 'p50_us')} | "
                f"{ratio(fast, 'p50_us')} | {_three(by, flow, slow, 'p50_us')} | "
                f"{ratio(slow, 'p50_us')} | {_bursts(by, flow)} | "
                f"{ratio('burst', 'msgs_per_s')} | "
                f"{_three(by, flow, fast, 'cpu_send_us', '{:.1f}')} | "
                f"{_three(by, flow, fast, 'cpu_recv_us', '{:.1f}')} | "
                f"{_three(by, flow, 'burst', 'cpu_send_us', '{:.1f}')} | "
                f"{_three(by, flow, 'burst', 'cpu_recv_us', '{:.1f}')} | {cpu} | {lost} |"
            )
    return "\n".join(out)


def targets(report: dict[str, Any]) -> list[str]:
    """Issue 14's ratio targets up to 64 KiB (send_output rows; against dora up to 1 KiB),
    worst case over kinds."""
    worst: dict[str, tuple[float, str]] = {}

    def note(name: str, value: float | None, where: str, high: bool) -> None:
        if value is None:
            return
        known = worst.get(name)
        if known is None or (value > known[0] if high else value < known[0]):
            worst[name] = (value, where)

    for kind, by_size in report["kinds"].items():
        for size_label, by in by_size.items():
            if by.get("size", 0) > 64 * KIB:
                continue
            raw, flow = by.get("raw"), by.get("flow")
            for phase in [pace_label(s) for s in PACINGS_S]:
                note("p50 flow/raw (<= 1.25)", _div(flow, raw, phase, "p50_us"),
                     f"{kind} {size_label} @{phase}", True)  # fmt: skip
            note("burst rate flow/raw (>= 0.7)", _div(flow, raw, "burst", "msgs_per_s"),
                 f"{kind} {size_label}", False)  # fmt: skip
            for phase in (pace_label(PACINGS_S[0]), "burst"):
                for side in ("send", "recv"):
                    note("CPU/msg flow/raw (<= 1.5)", _div(flow, raw, phase, f"cpu_{side}_us"),
                         f"{kind} {size_label} {side} @{phase}", True)  # fmt: skip
            if flow and flow.get("lost"):
                note("lost (0)", flow["lost"], f"{kind} {size_label}", True)
            if by.get("size", 0) <= KIB:
                dora = by.get("dora")
                lossy = " (dora lost messages in a run: the rate of what came)" if dora and \
                    dora.get("lost") else ""  # fmt: skip
                note("burst rate flow/dora (>= 5)", _div(flow, dora, "burst", "delivered_per_s"),
                     f"{kind} {size_label}{lossy}", False)  # fmt: skip
    return [f"- worst {name}: {value:.2f} ({where})" for name, (value, where) in worst.items()]


def _div(a: Any, b: Any, phase: str, key: str) -> float | None:
    x, y = _get(a, phase, key), _get(b, phase, key)
    return x / y if x and y else None


def other_table(report: dict[str, Any], start_runs: int) -> str:
    rows = ["| measure | flow | dora | flow/dora |", "|---|---|---|---|"]
    name = f"2-node run, one message, wall s (median of {start_runs})"
    f, d = report["flow"].get("start_two_s"), report["dora"].get("start_two_s")
    rows.append(f"| {name} | {_num(f, '{:.2f}')} | {_num(d, '{:.2f}')} | {_ratio(f, d)} |")
    rows.extend(start.rows(report))
    for key, name in (("fanout_p50_us", "fan-out 1 MiB to 20, p50 us"),
                      ("fanout_p99_us", "fan-out 1 MiB to 20, p99 us"),
                      ("fanout_msgs_per_s", "fan-out 1 MiB to 20, msg/s per receiver"),
                      ("fanout_lost", "fan-out lost")):  # fmt: skip
        f, d = report["flow"].get(key), report["dora"].get(key)
        rows.append(f"| {name} | {_num(f)} | {_num(d)} | {_ratio(f, d)} |")
    rss = report["flow"].get("rss", {})
    rows.append(f"| idle RSS daemon MiB | {_num(rss.get('daemon_mib'), '{:.1f}')} | - | - |")
    rows.append(f"| idle RSS one node MiB | {_num(rss.get('node_mib'), '{:.1f}')} | - | - |")
    return "\n".join(rows)
