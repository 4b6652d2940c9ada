"""`python -m bench --quick` runs end to end (tiny counts; no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO, flow_env


def test_bench_quick_runs_and_accounts_for_every_message(flow_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-dora", "--sizes", "8,1048576",
         "--kinds", "numpy", "--meta", "yes", "--json", str(out)],
        cwd=REPO, env=flow_env(flow_home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == []
    # one kind (the others take the same paths of the bench: 36 s -> 15 s of the suite)
    assert set(report["kinds"]) == {"numpy with metadata"}
    numpy = report["kinds"]["numpy with metadata"]
    assert set(numpy["8 B"]) == {"size", "raw", "flow"}
    # at or above the shared-memory threshold: also flow writing in place
    assert set(numpy["1 MiB"]) == {"size", "raw", "flow", "flow-buffer"}
    for rows in report["kinds"].values():
        for by in rows.values():
            for system in ("raw", "flow"):
                result = by[system]
                assert result["lost"] == 0
                assert result["burst"]["cpu_send_us"] > 0  # each side's own CPU time
                assert result["2ms"]["p50_us"] > 0
                assert result["10ms"]["p50_us"] > 0
    assert report["flow"]["fanout_lost"] == 0
    assert report["flow"]["rss"]["daemon_mib"] > 0
    assert "flow/raw" in done.stdout
    # start cost: chains (forked and exec'd), restart latency, import times
    assert set(report["flow"]["chain_s"]) == set(report["flow"]["chain_exec_s"]) == {"3", "5"}
    assert report["flow"]["restart"]["samples"] == 3
    assert report["flow"]["restart_exec"]["samples"] == 3
    assert "from node_sdk import Node" in report["flow"]["imports_ms"]
    assert "3-node chain run" in done.stdout


def test_bench_rounds_report_the_median_of_alternated_runs(
    flow_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-dora", "--sizes", "8", "--kinds",
         "bytes", "--meta", "yes", "--payloads-only", "--rounds", "2", "--json", str(out)],
        cwd=REPO, env=flow_env(flow_home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(out.read_text())["kinds"]["bytes with metadata"]["8 B"]
    assert row["raw"]["rounds"] == row["flow"]["rounds"] == 2
    assert row["flow"]["lost"] == 0
    assert done.stdout.count("bench: flow bytes with metadata 8 B:") == 2
    assert "the median of 2 alternated runs" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "bench", "--rounds", "0"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert "--rounds: at least 1" in refused.stderr
