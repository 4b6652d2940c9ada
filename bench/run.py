"""Runs raw pyzmq, flow and dora-rs interleaved, prints a table of ratios, writes JSON.

Every system runs the same two-process shape: a sender that sends paced messages (latency)
then a burst (throughput), a receiver that checks sequence numbers (every message is
accounted for: `lost` counts gaps and missing ones). flow and dora run the same node
scripts (bench/nodes) through their CLIs (`flow run`, `dora run`); dora is installed into
bench/.venv by pip the first time, and left out, saying why, when it cannot be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

from bench import start

HERE = Path(__file__).resolve().parent
NODES = HERE / "nodes"
VENV = HERE / ".venv"
KIB, MIB = 1024, 1024 * 1024
SIZES = [8, KIB, 64 * KIB, MIB, 4 * MIB, 16 * MIB]
# size -> (paced messages, burst messages, pacing interval s). One interval for every size:
# how long a process idled before a message changes its wake-up cost more than the size
# does (8 B paced at 2 ms or at 30 ms differ by 2x here), so "flat" must compare like with
# like; 10 ms lets raw pyzmq move 16 MiB between two messages.
PACE_S = 0.01
FULL = {
    8: (300, 20000, PACE_S),
    KIB: (300, 20000, PACE_S),
    64 * KIB: (300, 3000, PACE_S),
    MIB: (200, 300, PACE_S),
    4 * MIB: (100, 80, PACE_S),
    16 * MIB: (60, 25, PACE_S),
}
QUICK = {size: (5, 10, 0.005) for size in SIZES}
STEP_TIMEOUT_S = 120.0
START_RUNS = 7  # runs of the 2-node graph; the median is reported
SHM_THRESHOLD = 64 * KIB  # flow's default: at or above it, payloads go by shared memory
FLOW_COPY = "flow-copy"  # flow's sender with `send_output(bytes)`, not a buffer written in place


def _label(size: int) -> str:
    return (
        f"{size // MIB} MiB"
        if size >= MIB
        else f"{size // KIB} KiB"
        if size >= KIB
        else f"{size} B"
    )


class Bench:
    def __init__(self, quick: bool, use_dora: bool) -> None:
        self.quick = quick
        self.counts = QUICK if quick else FULL
        self.tmp = Path(tempfile.mkdtemp(prefix="fb", dir="/tmp"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.flow = str(Path(sys.executable).parent / "flow")
        self.dora: str | None = None
        self.dora_python: str | None = None
        self.dora_note = "not requested (--no-dora)"
        if use_dora:
            self.dora_note = self._install_dora()

    # ------------------------------------------------------------ setup

    def _install_dora(self) -> str:
        dora, python = VENV / "bin" / "dora", VENV / "bin" / "python"
        if not dora.exists():
            print("bench: installing dora-rs-cli and dora-rs into bench/.venv ...", flush=True)
            try:
                venv.create(VENV, with_pip=True)
                packages = ["dora-rs-cli", "dora-rs", "numpy", "pyarrow"]
                pip = [str(python), "-m", "pip", "install", "-q", *packages]
                subprocess.run(pip, check=True, timeout=600)
            except (OSError, subprocess.SubprocessError) as exc:
                return f"dora-rs could not be installed ({exc}): left out"
        try:
            version = subprocess.run([str(dora), "--version"], capture_output=True, text=True,
                                     timeout=30, check=True).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"dora-rs is installed but does not run ({exc}): left out"
        self.dora, self.dora_python = str(dora), str(python)
        return version

    def env(self, system: str, **extra: Any) -> dict[str, str]:
        env = {**os.environ, "FLOW_HOME": str(self.home), "BENCH_SDK": system,
               "PYTHONPATH": str(NODES)}  # fmt: skip
        env.pop("XDG_RUNTIME_DIR", None)
        # as on a user's machine: Python caches compiled modules (a sandbox may turn that off,
        # and then every process of either system compiles its sources again)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if system == "dora":
            env["PATH"] = f"{VENV / 'bin'}:{env['PATH']}"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # ------------------------------------------------------------ running one dataflow

    def dataflow(
        self, system: str, nodes: list[dict[str, Any]], env: dict[str, str],
        timeout: float = STEP_TIMEOUT_S,
    ) -> float:
        """Write and run a dataflow with `flow run` or `dora run`; its wall time in seconds."""
        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        lines = ["nodes:"]
        for node in nodes:
            lines.append(f"  - id: {node['id']}")
            lines.append(f"    path: {NODES / node['script']}")
            if node.get("outputs"):
                lines.append("    outputs: [out]")
            if node.get("source"):
                lines.append("    inputs:")
                lines.append(f"      in: {{source: {node['source']}, queue_size: "
                             f"{node.get('queue', 10)}}}")  # fmt: skip
            node_env = {"BENCH_OUT": node.get("out", "/dev/null"), **node.get("env", {})}
            lines.append("    env:")
            lines.extend(f"      {k}: '{v}'" for k, v in node_env.items())
        path = folder / "dataflow.yml"
        path.write_text("\n".join(lines) + "\n")
        if system == "flow":
            argv = [self.flow, "run", str(path)]
        else:
            assert self.dora is not None
            argv = [self.dora, "run", str(path)]
        before = _flow_segments()
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=folder, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        wall = time.perf_counter() - started
        for name in _flow_segments() - before:  # until the daemon removes a run's at its end
            Path("/dev/shm", name).unlink(missing_ok=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"{system} run failed ({done.returncode}): " + " | ".join(tail))
        return wall

    # ------------------------------------------------------------ measurements

    def pair(self, system: str, size: int) -> dict[str, Any]:
        """One sender and one receiver; `flow-copy` is flow sending bytes (one copy)."""
        paced, burst, interval = self.counts[size]
        out = self.tmp / f"{system}-{size}.json"
        out.unlink(missing_ok=True)
        copy = system == FLOW_COPY
        system = "flow" if copy else system
        env = self.env(system, BENCH_SIZE=size, BENCH_LAT=paced, BENCH_THR=burst,
                       BENCH_INTERVAL=interval, BENCH_COPY=int(copy))  # fmt: skip
        if system == "raw":
            endpoint = f"ipc://{self.tmp}/raw-{size}"
            peer = [sys.executable, str(NODES / "raw_peer.py")]
            recv = subprocess.Popen(
                [*peer, "recv", endpoint], env={**env, "BENCH_OUT": str(out)},
                stdout=subprocess.PIPE,
            )  # fmt: skip
            assert recv.stdout is not None
            recv.stdout.readline()  # bound
            subprocess.run([sys.executable, str(NODES / "raw_peer.py"), "send", endpoint],
                           env=env, timeout=STEP_TIMEOUT_S, check=True)  # fmt: skip
            recv.wait(STEP_TIMEOUT_S)
        else:
            queue = paced + burst + 10  # nothing is dropped: every message is accounted for
            self.dataflow(system, [
                {"id": "sender", "script": "sender.py", "outputs": True},
                {"id": "receiver", "script": "receiver.py", "source": "sender/out",
                 "queue": queue, "out": str(out)},
            ], env)  # fmt: skip
        return summarize(json.loads(out.read_text()), size)

    def fanout(self, system: str, receivers: int = 20) -> dict[str, Any]:
        size = MIB
        paced, burst = (5, 5) if self.quick else (100, 50)
        env = self.env(system, BENCH_SIZE=size, BENCH_LAT=paced, BENCH_THR=burst,
                       BENCH_INTERVAL=0.01, BENCH_SETTLE=1.0)  # fmt: skip
        outs = [self.tmp / f"fan-{system}-{n}.json" for n in range(receivers)]
        nodes = [{"id": "sender", "script": "sender.py", "outputs": True}]
        queue = paced + burst + 10
        nodes += [{"id": f"r{n}", "script": "receiver.py", "source": "sender/out",
                   "queue": queue, "out": str(outs[n])} for n in range(receivers)]  # fmt: skip
        self.dataflow(system, nodes, env)
        results = [json.loads(o.read_text()) for o in outs]
        merged = {"received": sum(r["received"] for r in results),
                  "expected": sum(r["expected"] for r in results),
                  "gaps": sum(r["gaps"] for r in results),
                  "lat_ns": [x for r in results for x in r["lat_ns"]],
                  "burst_ns": max(r["burst_ns"] for r in results)}  # fmt: skip
        return summarize(merged, size)  # msg/s: per receiver, the slowest one

    def start_two(self, system: str) -> float:
        """The median wall time of `START_RUNS` runs (one run varies by tens of percent)."""
        out = self.tmp / f"once-{system}.json"
        nodes = [
            {"id": "sender", "script": "once_sender.py", "outputs": True},
            {"id": "receiver", "script": "once_receiver.py", "source": "sender/out",
             "out": str(out)},
        ]  # fmt: skip
        runs = 1 if self.quick else START_RUNS
        return statistics.median(
            self.dataflow(system, nodes, self.env(system)) for _ in range(runs)
        )

    def chain(self, system: str, length: int = 50, **env: Any) -> float:
        out = self.tmp / f"chain-{system}.json"
        nodes: list[dict[str, Any]] = [{"id": "n0", "script": "once_sender.py", "outputs": True}]
        for n in range(1, length - 1):
            nodes.append({"id": f"n{n}", "script": "relay.py", "outputs": True,
                          "source": f"n{n - 1}/out"})  # fmt: skip
        nodes.append({"id": f"n{length - 1}", "script": "once_receiver.py",
                      "source": f"n{length - 2}/out", "out": str(out)})  # fmt: skip
        # dora needs about 0.4 s a node here: a 200-node chain takes longer than one step
        timeout = max(STEP_TIMEOUT_S, 3.0 * length)
        return self.dataflow(system, nodes, self.env(system, **env), timeout)

    def idle_rss(self) -> dict[str, float]:
        """RSS (MiB) of the flow daemon after `flow up`, and of one idle node under it."""
        env = self.env("flow")
        pid_file = self.tmp / "idle.pid"
        subprocess.run([self.flow, "up"], env=env, check=True, timeout=60, capture_output=True)
        try:
            folder = Path(tempfile.mkdtemp(dir=self.tmp))
            (folder / "dataflow.yml").write_text(
                f"nodes:\n  - id: idle\n    path: {NODES / 'idle.py'}\n    inputs:\n"
                f"      tick: dora/timer/secs/100\n    env:\n      BENCH_OUT: '{pid_file}'\n"
            )
            subprocess.run([self.flow, "start", str(folder / "dataflow.yml")], env=env,
                           check=True, timeout=60, capture_output=True)  # fmt: skip
            deadline = time.monotonic() + 30
            while not (pid_file.exists() and pid_file.read_text()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the idle node never started")
                time.sleep(0.05)
            time.sleep(1.0)  # settled
            daemon_pid = int((self.home / "daemon.pid").read_text().split()[0])
            return {
                "daemon_mib": _rss_mib(daemon_pid),
                "node_mib": _rss_mib(int(pid_file.read_text())),
            }
        finally:
            subprocess.run([self.flow, "down", "--force"], env=env, timeout=60, capture_output=True)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _flow_segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("flow-")}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def summarize(result: dict[str, Any], size: int) -> dict[str, Any]:
    lat = sorted(result["lat_ns"])
    burst = max(result["expected"] - len(lat), 0)
    seconds = result["burst_ns"] / 1e9
    lost = result["expected"] - result["received"] + result["gaps"]
    return {
        "p50_us": statistics.median(lat) / 1000 if lat else None,
        "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000 if lat else None,
        "msgs_per_s": burst / seconds if seconds > 0 else None,
        "mib_per_s": burst * size / MIB / seconds if seconds > 0 else None,
        "lost": lost,
    }


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _num(v: float | None, fmt: str = "{:.0f}") -> str:
    return fmt.format(v) if v is not None else "-"


def _lat(r: dict[str, Any]) -> str:
    return f"{_num(r.get('p50_us'))}/{_num(r.get('p99_us'))}" if r else "-"


def table(report: dict[str, Any]) -> str:
    rows = ["| size | raw p50/p99 us | flow p50/p99 us | dora p50/p99 us | flow/raw p50 | "
            "flow/dora p50 | raw msg/s | flow msg/s | dora msg/s | flow/raw thr | flow/dora thr "
            "| lost (raw/flow/dora) |", "|" + "---|" * 12]  # fmt: skip
    for label, by in report["sizes"].items():
        raw, flow, dora = by.get("raw", {}), by.get("flow", {}), by.get("dora", {})
        rows.append(
            f"| {label} | {_lat(raw)} | {_lat(flow)} | {_lat(dora)} | "
            f"{_ratio(flow.get('p50_us'), raw.get('p50_us'))} | "
            f"{_ratio(flow.get('p50_us'), dora.get('p50_us'))} | "
            f"{_num(raw.get('msgs_per_s'))} | {_num(flow.get('msgs_per_s'))} | "
            f"{_num(dora.get('msgs_per_s'))} | "
            f"{_ratio(flow.get('msgs_per_s'), raw.get('msgs_per_s'))} | "
            f"{_ratio(flow.get('msgs_per_s'), dora.get('msgs_per_s'))} | "
            f"{raw.get('lost', '-')}/{flow.get('lost', '-')}/{dora.get('lost', '-')} |"
        )
    rows.append("")
    rows.append("Shared memory: flow writing the payload in place (`send_output_buffer`, the "
                "table above) and sending bytes with one copy (`send_output`, as dora's Python "
                "API does)")  # fmt: skip
    rows.append("")
    rows.append("| size | flow in place p50/p99 us | flow one copy p50/p99 us | dora p50/p99 us "
                "| copy/dora p50 | in place msg/s | one copy msg/s | dora msg/s |")  # fmt: skip
    rows.append("|" + "---|" * 8)
    for label, by in report["sizes"].items():
        copy = by.get(FLOW_COPY)
        if not copy:
            continue
        flow, dora = by.get("flow", {}), by.get("dora", {})
        rows.append(
            f"| {label} | {_lat(flow)} | {_lat(copy)} | {_lat(dora)} | "
            f"{_ratio(copy.get('p50_us'), dora.get('p50_us'))} | "
            f"{_num(flow.get('msgs_per_s'))} | {_num(copy.get('msgs_per_s'))} | "
            f"{_num(dora.get('msgs_per_s'))} |"
        )
    rows.append("")
    rows.append("| measure | flow | dora | flow/dora |")
    rows.append("|---|---|---|---|")
    name = f"2-node run, one message, wall s (median of {START_RUNS})"
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


def _attempt(errors: list[str], what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        errors.append(f"{what}: {exc}")
        print(f"bench: {what} failed: {exc}", file=sys.stderr, flush=True)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    parser.add_argument("--no-dora", action="store_true", help="leave dora-rs out")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write JSON")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in bytes")
    args = parser.parse_args(argv)
    bench = Bench(args.quick, not args.no_dora)
    systems = ["raw", "flow"] + (["dora"] if bench.dora else [])
    print(f"bench: dora-rs: {bench.dora_note}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    report: dict[str, Any] = {"dora": {}, "flow": {}, "sizes": {}, "errors": [],
                              "dora_note": bench.dora_note, "quick": args.quick}  # fmt: skip
    errors = report["errors"]
    started = time.perf_counter()
    lengths = start.QUICK_CHAINS if args.quick else start.CHAINS
    try:
        for size in sizes:  # interleaved: every system at one size, then the next size
            by = report["sizes"][_label(size)] = {}
            extra = [FLOW_COPY] if size >= SHM_THRESHOLD else []
            for system in systems + extra:
                got = _attempt(errors, f"{system} {_label(size)}", bench.pair, system, size)
                if got is not None:
                    by[system] = got
                    print(f"bench: {_label(size):>7} {system:>4}: {got}", flush=True)
        for system in systems[1:]:
            out = report[system]
            out["start_two_s"] = _attempt(errors, f"{system} 2-node", bench.start_two, system)
            out["chain_s"] = _attempt(errors, f"{system} chains", start.chains, bench, system,
                                      lengths) or {}  # fmt: skip
            fan = _attempt(errors, f"{system} fan-out", bench.fanout, system)
            if fan:
                out["fanout_p50_us"], out["fanout_p99_us"] = fan["p50_us"], fan["p99_us"]
                out["fanout_msgs_per_s"], out["fanout_lost"] = fan["msgs_per_s"], fan["lost"]
        report["flow"]["rss"] = _attempt(errors, "flow idle RSS", bench.idle_rss) or {}
        flow = report["flow"]
        flow["chain_exec_s"] = _attempt(errors, "flow chains (exec)", start.chains, bench,
                                        "flow-exec", lengths) or {}  # fmt: skip
        flow["restart"] = _attempt(errors, "restart", start.restart_latency, bench)
        flow["restart_exec"] = _attempt(errors, "restart (exec)", start.restart_latency, bench,
                                        True)  # fmt: skip
        flow["imports_ms"] = _attempt(errors, "imports", start.import_times) or {}
    finally:
        bench.close()
    report["seconds"] = time.perf_counter() - started
    text = table(report)
    print(text)
    print(f"\nbench: {report['seconds']:.0f} s; dora-rs: {bench.dora_note}")
    for error in errors:
        print(f"bench: error: {error}")
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"bench: JSON in {args.json}")
    return 1 if errors else 0
