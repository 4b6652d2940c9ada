"""`flow top`: CPU, memory, message rates, drops and latency of every node of every live run.

Message counts come from the nodes' own reports (relayed from other machines like any node
channel frame); CPU and memory are measured on each node's machine: here for this
machine's nodes, by the member for its own (asked over the cluster link, in parallel).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from daemon.cluster.placing import ClusterPlacer
from daemon.cluster.remote_watch import RemoteWatch, Usage
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.pids import cpu_percent, cpu_seconds, rss_bytes

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime

MAX_SAMPLE_S = 2.0


def _pids(rt: Runtime) -> list[int]:
    return [s.pid for r in rt.runs.values() for s in r.slots.values()
            if s.pid is not None and not (r.placed and r.placed.is_remote(s.id))]  # fmt: skip


async def _remote_usage(rt: Runtime, sample_s: float) -> dict[tuple[str, str], Usage]:
    """(run, machine) -> the usage of the run's nodes there, asked of every member at once."""
    watch = rt.placer.watch if isinstance(rt.placer, ClusterPlacer) else None
    found: dict[tuple[str, str], Usage] = {}
    if watch is None:
        return found

    async def ask(remote: RemoteWatch, run_id: str, machine: str) -> None:
        found[(run_id, machine)] = await remote.usage(run_id, machine, sample_s)

    async with trio.open_nursery() as nursery:
        for run in rt.runs.values():
            if run.placed is not None:
                for machine in run.placed.remotes:
                    nursery.start_soon(ask, watch, run.id, machine)
    return found


def _is_out(rate_key: str) -> bool:
    """Output rates are keyed `out:<id>` (daemon/model/node_stats.py), inputs by their id."""
    return rate_key.startswith("out:")


def _total(rates: dict[str, float], *, outputs: bool) -> float | None:
    if not rates:
        return None
    return round(sum(v for k, v in rates.items() if _is_out(k) == outputs), 2)


def _worst(inputs: dict[str, dict[str, int]], key: str) -> int | None:
    values = [counters[key] for counters in inputs.values() if key in counters]
    return max(values) if values else None


async def top(rt: Runtime, req: rq.Top) -> rp.TopReply:
    """A snapshot; with `sample_s`, CPU is measured over that long, else since the last call."""
    sample_s = min(req.sample_s, MAX_SAMPLE_S)
    if sample_s > 0:
        rt.cpu_samples = {pid: (cpu_seconds(pid), time.monotonic()) for pid in _pids(rt)}
    async with trio.open_nursery() as nursery:  # members measure theirs meanwhile
        nursery.start_soon(trio.sleep, sample_s)
        remote = await _remote_usage(rt, sample_s)
    now = time.monotonic()
    previous, rt.cpu_samples = rt.cpu_samples, {}
    runs = []
    for run in rt.runs.values():
        nodes = []
        for slot in run.slots.values():
            cpu = rss = None
            running = slot.alive or slot.attached  # else its generation ended: no pid
            machine = run.placed.placement.machine_of.get(slot.id) if run.placed else None
            if run.placed is not None and run.placed.is_remote(slot.id):
                cpu, rss = remote.get((run.id, str(machine)), {}).get(slot.id, (None, None))
            elif slot.pid is not None and running:
                cpu = cpu_percent(slot.pid, now, previous, rt.cpu_samples)
                rss = rss_bytes(slot.pid)
            stats = slot.current_stats or {}  # an ended generation's: totals only
            inputs = stats.get("inputs") or {}
            outputs = stats.get("outputs") or {}
            rates = stats.get("rates") or {}
            nodes.append(
                {
                    "id": slot.id,
                    "machine": machine,  # None in a run on one machine
                    "status": str(slot.status),
                    "pid": slot.pid if running else None,
                    "generation": slot.generation,
                    "cpu_percent": cpu,
                    "rss_bytes": rss,
                    "rates": rates,
                    # what the node does: messages taken in on every input, and sent on
                    # every output (a source, a camera, only sends); None until two
                    # reports gave a rate (a node that reports nothing: not an SDK node, and
                    # no `send_stdout_as` output, which its keeper reports)
                    "in_rate": _total(rates, outputs=False),
                    "out_rate": _total(rates, outputs=True),
                    "dropped": sum(i.get("dropped", 0) for i in inputs.values())
                    + sum(o.get("dropped", 0) for o in outputs.values()),
                    # what waits now; None once the generation ended (its queues went with it)
                    "queued": sum(i.get("queued", 0) for i in inputs.values())
                    if running else None,
                    # send-to-receive latency over the node's last report interval, of its
                    # slowest input (node_sdk/latency.py); None when nothing came in
                    "latency_p50_us": _worst(inputs, "latency_p50_us"),
                    "latency_p99_us": _worst(inputs, "latency_p99_us"),
                }
            )
        runs.append({"id": run.id, "name": run.name, "status": str(run.status), "nodes": nodes})
    return rp.TopReply(runs=runs, time=time.time())


TOP_HANDLERS = {rq.Top: top}
