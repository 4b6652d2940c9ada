"""`flow top`: CPU, memory, message rates and drops of every node of every live run."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import trio

from daemon.model import replies as rp
from daemon.model import requests as rq

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_SAMPLE_S = 2.0

Body = dict[str, Any]


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def _pids(rt: Runtime) -> list[int]:
    return [s.pid for r in rt.runs.values() for s in r.slots.values() if s.pid is not None]


async def top(rt: Runtime, req: rq.Top) -> rp.TopReply:
    """A snapshot; with `sample_s`, CPU is measured over that long, else since the last call."""
    sample_s = min(req.sample_s, MAX_SAMPLE_S)
    if sample_s > 0:
        rt.cpu_samples = {pid: (cpu_ticks(pid), time.monotonic()) for pid in _pids(rt)}
        await trio.sleep(sample_s)
    now = time.monotonic()
    previous, rt.cpu_samples = rt.cpu_samples, {}
    runs = []
    for run in rt.runs.values():
        nodes = []
        for slot in run.slots.values():
            cpu = rss = None
            if slot.pid is not None and (slot.alive or slot.attached):
                ticks = cpu_ticks(slot.pid)
                rt.cpu_samples[slot.pid] = (ticks, now)
                before = previous.get(slot.pid)
                if ticks is not None and before and before[0] is not None and now > before[1]:
                    cpu = round(100.0 * (ticks - before[0]) / TICKS / (now - before[1]), 1)
                rss = rss_bytes(slot.pid)
            stats = slot.stats or {}
            inputs = stats.get("inputs") or {}
            outputs = stats.get("outputs") or {}
            nodes.append(
                {
                    "id": slot.id,
                    "status": str(slot.status),
                    "pid": slot.pid,
                    "generation": slot.generation,
                    "cpu_percent": cpu,
                    "rss_bytes": rss,
                    "rates": stats.get("rates") or {},
                    "dropped": sum(i.get("dropped", 0) for i in inputs.values())
                    + sum(o.get("dropped", 0) for o in outputs.values()),
                    "queued": sum(i.get("queued", 0) for i in inputs.values()),
                }
            )
        runs.append({"id": run.id, "name": run.name, "status": str(run.status), "nodes": nodes})
    return rp.TopReply(runs=runs, time=time.time())


TOP_HANDLERS = {rq.Top: top}
