"""Runs raw pyzmq, flow and dora-rs interleaved, prints tables of ratios, writes JSON.

Every system runs the same two-process shape for each payload kind users send (bytes, a
new numpy array per message, pyarrow uint8 and struct arrays; with and without a small
metadata dict) and each size: a sender that sends messages paced at 2 ms, then at 10 ms
(latency), then a burst (rate), and a receiver that checks sequence numbers (`lost`);
both report their own CPU time per message (bench/measure.py). flow and dora run the same
node scripts (bench/nodes) through their CLIs (`flow run`, `dora run`); dora is installed
into bench/.venv by pip the first time, and left out, saying why, when it cannot be.
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

from bench import measure, start, tables
from bench.bounded import run_bounded
from bench.tables import BUFFER

HERE = Path(__file__).resolve().parent
NODES = HERE / "nodes"
VENV = HERE / ".venv"
STEP_TIMEOUT_S = 180.0
START_RUNS = 7  # runs of the 2-node graph; the median is reported


class Bench:
    def __init__(self, quick: bool, use_dora: bool, scale: float = 1.0) -> None:
        self.quick = quick
        self.scale = scale
        self.tmp = Path(tempfile.mkdtemp(prefix="fb", dir="/tmp"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.flow = str(Path(sys.executable).parent / "flow")
        self.run_options: list[str] = []  # more `flow run` options (bench/record.py)
        self.last_cpu = 0.0  # user + sys seconds of the last dataflow's run (`dataflow`)
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
        if system != "flow":
            env.pop("BENCH_PROFILE", None)  # flow's nodes only
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
            argv = [self.flow, "run", *self.run_options, str(path)]
        else:
            assert self.dora is not None
            argv = [self.dora, "run", str(path)]
        started, before = time.perf_counter(), measure.children_cpu()
        done = run_bounded(argv, env, folder, timeout)
        wall = time.perf_counter() - started
        # the CLI's process and what it waited for (flow's nodes: its keeper thread waits)
        self.last_cpu = measure.children_cpu() - before
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"{system} run failed ({done.returncode}): " + " | ".join(tail))
        return wall

    # ------------------------------------------------------------ measurements

    def pair(self, system: str, kind: str, meta: bool, size: int) -> dict[str, Any]:
        """One sender and one receiver sending `kind` values of `size` bytes; `flow-buffer`
        is flow's sender writing each payload in place (`send_output_buffer`)."""
        paced, burst = measure.counts(size, self.quick, self.scale)
        tag = f"{system}-{kind}-{int(meta)}-{size}"
        send_out, recv_out = self.tmp / f"{tag}-send.json", self.tmp / f"{tag}-recv.json"
        buffer = system == BUFFER
        system = "flow" if buffer else system
        env = self.env(system, BENCH_SIZE=size, BENCH_KIND=kind, BENCH_META=int(meta),
                       BENCH_PACED=_paced(paced), BENCH_BURST=burst,
                       BENCH_MODE="buffer" if buffer else "send")  # fmt: skip
        if system == "raw":
            endpoint = f"ipc://{self.tmp}/raw-{tag}"
            peer = [sys.executable, str(NODES / "raw_peer.py")]
            recv_env = {**env, "BENCH_OUT": str(recv_out)}
            recv = subprocess.Popen([*peer, "recv", endpoint], env=recv_env,
                                    stdout=subprocess.PIPE)  # fmt: skip
            try:
                assert recv.stdout is not None
                recv.stdout.readline()  # bound
                subprocess.run([*peer, "send", endpoint], env={**env, "BENCH_OUT": str(send_out)},
                               timeout=STEP_TIMEOUT_S, check=True)  # fmt: skip
                recv.wait(STEP_TIMEOUT_S)
            finally:
                recv.kill()
                recv.wait()
        else:
            queue = sum(n for n, _ in paced) + burst + 10  # nothing dropped: all accounted for
            self.dataflow(system, [
                {"id": "sender", "script": "sender.py", "outputs": True, "out": str(send_out)},
                {"id": "receiver", "script": "receiver.py", "source": "sender/out",
                 "queue": queue, "out": str(recv_out)},
            ], env)  # fmt: skip
        return measure.summarize(_load(send_out), [_load(recv_out)], paced, burst)

    def fanout(self, system: str, receivers: int = 20) -> dict[str, Any]:
        size = measure.MIB
        paced = [(5 if self.quick else 100, 0.01)]
        burst = 5 if self.quick else 50
        env = self.env(system, BENCH_SIZE=size, BENCH_KIND="bytes", BENCH_META=1,
                       BENCH_PACED=_paced(paced), BENCH_BURST=burst, BENCH_SETTLE=1.0)  # fmt: skip
        send_out = self.tmp / f"fan-{system}-send.json"
        outs = [self.tmp / f"fan-{system}-{n}.json" for n in range(receivers)]
        nodes = [{"id": "sender", "script": "sender.py", "outputs": True, "out": str(send_out)}]
        queue = paced[0][0] + burst + 10
        nodes += [{"id": f"r{n}", "script": "receiver.py", "source": "sender/out",
                   "queue": queue, "out": str(outs[n])} for n in range(receivers)]  # fmt: skip
        self.dataflow(system, nodes, env)
        got = measure.summarize(_load(send_out), [_load(o) for o in outs], paced, burst)
        phase = got[measure.pace_label(paced[0][1])]
        return {"p50_us": phase["p50_us"], "p99_us": phase["p99_us"],
                "msgs_per_s": got["burst"]["msgs_per_s"], "lost": got["lost"]}  # fmt: skip

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


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _paced(phases: list[tuple[int, float]]) -> str:
    return ",".join(f"{count}@{interval}" for count, interval in phases)


def _attempt(errors: list[str], what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        errors.append(f"{what}: {exc}")
        print(f"bench: {what} failed: {exc}", file=sys.stderr, flush=True)
        return None


def _csv(text: str | None, default: list[Any], cast: Any = str) -> list[Any]:
    return [cast(item) for item in text.split(",")] if text else list(default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    parser.add_argument("--no-dora", action="store_true", help="leave dora-rs out")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write JSON")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in bytes")
    parser.add_argument("--dora-sizes", action="store_true",
                        help="dora's own benchmark sizes: np.uint64 arrays of 1 to 5,120,000")
    parser.add_argument("--kinds", default=None, help=f"comma-separated, of {measure.KINDS}")
    parser.add_argument("--meta", default="yes,no", help="with metadata (yes), without (no)")
    parser.add_argument("--scale", type=float, default=1.0, help="message counts times this")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each payload row, alternated; each figure their median")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="cProfile flow's sender and receiver into DIR (one kind, size)")
    parser.add_argument("--payloads-only", action="store_true",
                        help="leave out the start, chain, fan-out and RSS measures")
    parser.add_argument("--chains-only", action="store_true",
                        help="only the chains: flow forked, dora, flow exec'd")
    parser.add_argument("--chains", default=None, metavar="LENGTHS",
                        help="comma-separated chain lengths (default 10,50,100,200)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    bench = Bench(args.quick, not args.no_dora, args.scale)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        os.environ["BENCH_PROFILE"] = os.path.abspath(args.profile)  # the last run's stays
    systems = ["raw", "flow"] + (["dora"] if bench.dora else [])
    print(f"bench: dora-rs: {bench.dora_note}", flush=True)
    default_sizes = measure.DORA_SIZES if args.dora_sizes else measure.SIZES
    sizes = _csv(args.sizes, default_sizes, int)
    kinds = _csv(args.kinds, measure.KINDS)
    unknown = set(kinds) - set(measure.KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)} (known: {measure.KINDS})")
    metas = [m == "yes" for m in _csv(args.meta, ["yes", "no"])]
    report: dict[str, Any] = {"dora": {}, "flow": {}, "kinds": {}, "errors": [],
                              "dora_note": bench.dora_note, "quick": args.quick,
                              "rounds": args.rounds, "load": os.getloadavg()}  # fmt: skip
    errors = report["errors"]
    started = time.perf_counter()
    lengths = start.QUICK_CHAINS if args.quick else start.CHAINS
    lengths = tuple(_csv(args.chains, list(lengths), int))
    try:
        if args.chains_only:
            start.chains_only(bench, systems[1:], lengths, report)
            kinds = []
        for kind in kinds:
            for meta in metas:
                name = f"{kind} {'with' if meta else 'without'} metadata"
                rows = report["kinds"][name] = {}
                for size in sizes:  # interleaved: every system at one size, then the next
                    by = rows[measure.label(size)] = {"size": size}
                    extra = [BUFFER] if size >= measure.SHM_THRESHOLD and kind in (
                        "bytes", "numpy") else []  # fmt: skip
                    runs: dict[str, list[dict[str, Any]]] = {}
                    for _ in range(args.rounds):  # alternated: every system once a round
                        for system in systems + extra:
                            what = f"{system} {name} {measure.label(size)}"
                            got = _attempt(errors, what, bench.pair, system, kind, meta, size)
                            if got is not None:
                                runs.setdefault(system, []).append(got)
                                print(f"bench: {what}: {_brief(got)}", flush=True)
                    by.update({system: measure.median_of(got) for system, got in runs.items()})
        for system in [] if args.payloads_only or args.chains_only else systems[1:]:
            out = report[system]
            out["start_two_s"] = _attempt(errors, f"{system} 2-node", bench.start_two, system)
            out["chain_s"] = _attempt(errors, f"{system} chains", start.chains, bench, system,
                                      lengths, out.setdefault("chain_cpu_s", {})) or {}  # fmt: skip
            fan = _attempt(errors, f"{system} fan-out", bench.fanout, system)
            if fan:
                out["fanout_p50_us"], out["fanout_p99_us"] = fan["p50_us"], fan["p99_us"]
                out["fanout_msgs_per_s"], out["fanout_lost"] = fan["msgs_per_s"], fan["lost"]
        if not (args.payloads_only or args.chains_only):
            report["flow"]["rss"] = _attempt(errors, "flow idle RSS", bench.idle_rss) or {}
            flow = report["flow"]
            exec_cpu = flow.setdefault("chain_exec_cpu_s", {})
            flow["chain_exec_s"] = _attempt(errors, "flow chains (exec)", start.chains, bench,
                                            "flow-exec", lengths, exec_cpu) or {}  # fmt: skip
            flow["restart"] = _attempt(errors, "restart", start.restart_latency, bench)
            flow["restart_exec"] = _attempt(errors, "restart (exec)", start.restart_latency, bench,
                                            True)  # fmt: skip
            flow["imports_ms"] = _attempt(errors, "imports", start.import_times) or {}
    finally:
        bench.close()
    report["seconds"] = time.perf_counter() - started
    report["load_after"] = os.getloadavg()
    print(start.chain_table(report) if args.chains_only else render(report, args.payloads_only))
    print(f"\nbench: {report['seconds']:.0f} s; load average before {report['load'][0]:.2f}, "
          f"after {report['load_after'][0]:.2f}; dora-rs: {bench.dora_note}")
    for error in errors:
        print(f"bench: error: {error}")
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"bench: JSON in {args.json}")
    return 1 if errors else 0


def render(report: dict[str, Any], payloads_only: bool = False) -> str:
    rounds = report.get("rounds", 1)
    parts = [f"Each payload figure is the median of {rounds} alternated runs.", ""] if (
        rounds > 1) else []  # fmt: skip
    for name, rows in report["kinds"].items():
        parts += [f"### {name}", "", tables.kind_table(rows), ""]
    parts += ["A burst rate in parentheses is of a system that lost messages: the rate of what"
              " came.", "", "Targets up to 64 KiB (send_output rows, worst over kinds and "
              "pacings; against dora up to 1 KiB):"]  # fmt: skip
    parts += [*tables.targets(report), ""]
    if not payloads_only:
        parts.append(tables.other_table(report, START_RUNS))
    return "\n".join(parts)


def _brief(got: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} p50 {v.get('p50_us') or 0:.0f} us" for k, v in got.items()
                       if isinstance(v, dict) and k != "burst")  # fmt: skip
    rate = got["burst"].get("msgs_per_s") or 0
    return f"{phases}, burst {rate:.0f} msg/s, lost {got['lost']}"
