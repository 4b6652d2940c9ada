"""`python -m bench.record [--quick] [--sizes 8,1048576] [--rounds N]`: what `--record` costs.

The same sender -> receiver pair as `python -m bench` (bench/run.py), run with `flow run`
and with `flow run --record` in turn, `--rounds` times each: latency p50/p99 (paced) and
throughput (burst) of the receiver, and what the recording held and missed. The recorder
is a drop_oldest observer, so the pair's own figures are what it costs the run; the
recording's count says what a recorder keeps up with.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.measure import MIB, label
from bench.run import Bench

DEFAULT_SIZES = (8, MIB)


def recorded(path: Path) -> tuple[int, int]:
    """(recorded, missed) of a recording, from the tally the recorder writes at its end."""
    from mcap.reader import make_reader

    total = missed = 0
    with path.open("rb") as stream:
        for record in make_reader(stream).iter_metadata():
            if record.name == "flow.recording":
                for text in record.metadata.values():
                    counts = dict(part.split("=") for part in text.split())
                    total += int(counts["recorded"])
                    missed += int(counts["missed"])
    return total, missed


def measure(bench: Bench, size: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "record": []}
    for n in range(rounds):
        for mode in ("plain", "record"):
            rec = bench.tmp / f"rec-{size}-{n}.mcap"
            bench.run_options = ["--record", str(rec)] if mode == "record" else []
            result = _flat(bench.pair("flow", "bytes", True, size))
            if mode == "record":
                result["recorded"], result["missed"] = recorded(rec)
                result["file_mib"] = rec.stat().st_size / MIB
                rec.unlink()
            runs[mode].append(result)
    return {mode: _median(results) for mode, results in runs.items()}


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """The figures this table shows: latency at 10 ms pacing, the burst's rate, losses."""
    paced, burst = result.get("10ms", {}), result.get("burst", {})
    return {"p50_us": paced.get("p50_us"), "p99_us": paced.get("p99_us"),
            "msgs_per_s": burst.get("msgs_per_s"), "lost": result.get("lost")}  # fmt: skip


def _num(v: float | None, fmt: str = "{:.0f}") -> str:
    return fmt.format(v) if v is not None else "-"


def _lat(r: dict[str, Any]) -> str:
    return f"{_num(r.get('p50_us'))}/{_num(r.get('p99_us'))}"


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for r in results for k, v in r.items() if isinstance(v, int | float)}
    return {k: statistics.median(r[k] for r in results if r.get(k) is not None) for k in keys}


def table(report: dict[str, dict[str, Any]]) -> str:
    rows = ["| size | p50/p99 us | p50/p99 us --record | msg/s | msg/s --record | thr ratio "
            "| recorded / missed | file MiB | lost |", "|" + "---|" * 9]  # fmt: skip
    for size_label, by in report.items():
        plain, rec = by["plain"], by["record"]
        ratio = rec["msgs_per_s"] / plain["msgs_per_s"] if plain.get("msgs_per_s") else None
        rows.append(
            f"| {size_label} | {_lat(plain)} | {_lat(rec)} | {_num(plain.get('msgs_per_s'))} | "
            f"{_num(rec.get('msgs_per_s'))} | {_num(ratio, '{:.2f}')} | "
            f"{_num(rec.get('recorded'))} / {_num(rec.get('missed'))} | "
            f"{_num(rec.get('file_mib'), '{:.1f}')} | "
            f"{_num(plain.get('lost'))}/{_num(rec.get('lost'))} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    bench = Bench(args.quick, use_dora=False)
    try:
        report = {label(size): measure(bench, size, args.rounds) for size in sizes}
    finally:
        bench.close()
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
