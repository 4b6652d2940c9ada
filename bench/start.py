"""Start cost: chains of N Python nodes under `flow run` (and `dora run`), forked and
exec'd; how soon a crashed node runs again; what importing the SDK costs."""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.run import Bench

HERE = Path(__file__).resolve().parent
CHAINS = (10, 50, 100, 200)
QUICK_CHAINS = (3, 5)
# where each chain's CPU seconds go, beside its wall seconds
CPU_KEYS = {"chain_s": "chain_cpu_s", "chain_exec_s": "chain_exec_cpu_s"}
RESTARTS = 20  # crashes of the restart node (each one a latency sample)
IMPORT_RUNS = 9  # the minimum is reported: the machine's other work only adds
IMPORTS = {
    "import node_sdk": "import node_sdk",
    "from node_sdk import Node": "from node_sdk import Node",
    "import zmq": "import zmq",
}


def chains(
    bench: Bench, system: str, lengths: tuple[int, ...], cpu: dict[str, float] | None = None
) -> dict[str, float]:
    """Wall seconds of `flow run` / `dora run` of each chain (`flow-exec`: spawn: exec);
    into `cpu`, the CPU seconds of each (every process the CLI waited for)."""
    results: dict[str, float] = {}
    for length in lengths:
        if system == "flow-exec":
            results[str(length)] = bench.chain("flow", length, FLOW_SPAWN="exec")
        else:
            results[str(length)] = bench.chain(system, length)
        if cpu is not None:
            cpu[str(length)] = bench.last_cpu
        print(f"bench: {length}-node chain {system}: {results[str(length)]:.2f} s, "
              f"CPU {bench.last_cpu:.2f} s", flush=True)  # fmt: skip
    return results


def chains_only(bench: Bench, systems: list[str], lengths: tuple[int, ...],
                report: dict[str, Any]) -> None:
    """`--chains-only`: each system's chains, then flow's exec'd ones (errors recorded)."""
    for system in [*systems, "flow-exec"]:
        key = "chain_exec_s" if system == "flow-exec" else "chain_s"
        out = report["flow" if system == "flow-exec" else system]
        try:
            out[key] = chains(bench, system, lengths, out.setdefault(CPU_KEYS[key], {}))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            report["errors"].append(f"{system} chains: {exc}")


def chain_table(report: dict[str, Any]) -> str:
    """The chain rows alone (`--chains-only`)."""
    lines = ["| measure | flow | dora | flow/dora |", "|---|---|---|---|"]
    return "\n".join(lines + [row for row in rows(report) if "chain" in row])


def restart_latency(bench: Bench, exec_spawn: bool = False) -> dict[str, float]:
    """From a crashed node's last line to its next generation's first (restart_delay 0),
    ms: median and max over the crashes."""
    folder = Path(tempfile.mkdtemp(dir=bench.tmp))
    out = folder / "stamps.txt"
    crashes = 3 if bench.quick else RESTARTS
    spawn = "exec" if exec_spawn else "fork"
    (folder / "dataflow.yml").write_text(
        f"nodes:\n  - id: crashy\n    path: {HERE / 'nodes' / 'crashy.py'}\n"
        f"    connects: false\n    restart_policy: on-failure\n    restart_delay: 0\n"
        f"    max_restarts: 0\n    spawn: {spawn}\n"
        f"    env:\n      BENCH_OUT: '{out}'\n      BENCH_STARTS: '{crashes + 1}'\n"
    )
    done = subprocess.run([bench.flow, "run", str(folder / "dataflow.yml")],
                          env=bench.env("flow"), capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"restart run failed: {done.stderr.strip()[-300:]}")
    stamps = [line.split() for line in out.read_text().splitlines()]
    gaps = [
        (float(b[1]) - float(a[1])) * 1000
        for a, b in itertools.pairwise(stamps)
        if a[0] == "exit" and b[0] == "start"
    ]
    return {"median_ms": statistics.median(gaps), "max_ms": max(gaps), "samples": len(gaps)}


def import_times(python: str = sys.executable) -> dict[str, float]:
    """Milliseconds of each import in a fresh interpreter (the least of IMPORT_RUNS)."""
    results = {}
    for name, statement in IMPORTS.items():
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        runs = []
        for _ in range(IMPORT_RUNS):
            done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                                  timeout=60, check=True)  # fmt: skip
            runs.append(float(done.stdout) * 1000)
        results[name] = min(runs)
    started = []
    for _ in range(IMPORT_RUNS):  # the interpreter's own start, for scale
        begin = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True, timeout=60)
        started.append((time.perf_counter() - begin) * 1000)
    results["python -c pass (the whole process)"] = min(started)
    return results


def rows(report: dict[str, Any]) -> list[str]:
    """The start-cost rows of the measures table."""
    flow, dora = report["flow"], report["dora"]
    out = []
    for key, what in (("chain_s", "wall s"), ("chain_cpu_s", "CPU s of every process")):
        exec_key = "chain_exec_s" if key == "chain_s" else CPU_KEYS["chain_exec_s"]
        for length, seconds in flow.get(key, {}).items():
            execd = flow.get(exec_key, {}).get(length)
            theirs = dora.get(key, {}).get(length)
            ratio = _ratio(seconds, theirs)
            out.append(f"| {length}-node chain run, {what} (flow exec'd: {_num(execd)}) "
                       f"| {_num(seconds)} | {_num(theirs)} | {ratio} |")  # fmt: skip
    for key, how in (("restart", "fork"), ("restart_exec", "exec")):
        name = f"crashed node running again ({how}), ms median/max"
        got = flow.get(key)
        if got:
            out.append(f"| {name} | {got['median_ms']:.1f}/{got['max_ms']:.1f} | - | - |")
    for name, ms in flow.get("imports_ms", {}).items():
        out.append(f"| `{name}`, ms (least of {IMPORT_RUNS}) | {ms:.1f} | - | - |")
    return out


def _num(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"
