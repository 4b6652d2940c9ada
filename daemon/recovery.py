"""Recovery at daemon start (SPEC 7.4): adopt what lived through, restart what did not.

Runs a daemon left `running`/`starting` (it crashed) or `interrupted` (it was terminated by
a signal) come back unless their file says `recover: false`. A run whose keeper still
answers is adopted as it is: no restart, no lost or repeated message. Otherwise its stale
processes are killed first and every node is started once more, generation + 1.
Runs stopped by `flow stop` or `flow down` are `stopped` and never come back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from daemon.errors import FlowError
from daemon.keeper_link import probe_keeper
from daemon.runtime import Runtime
from daemon.states import RunStatus
from daemon.supervisor import Run

log = logging.getLogger(__name__)


async def recover_runs(rt: Runtime) -> None:
    """Bring back every interrupted run of this home; each failure stays that run's."""
    for info in rt.store.interrupted_runs():
        origin = str(info["origin"])
        if origin.startswith("foreground"):
            _settle_foreground(rt, info, origin)
            continue
        try:
            await _recover(rt, info)
        except FlowError as exc:
            log.warning("run %s could not be recovered: %s", info["id"], exc)
            rt.store.update_run(info["id"], status="failed", error=f"not recovered: {exc}")


def _settle_foreground(rt: Runtime, info: dict[str, Any], origin: str) -> None:
    """A `flow run` that died without recording its end is recorded as failed."""
    pid = origin.partition(":")[2]
    if pid.isdigit() and Path(f"/proc/{pid}").exists():
        return  # still running in its own terminal
    rt.store.update_run(info["id"], status="failed", error="the flow run process exited")


async def _recover(rt: Runtime, info: dict[str, Any]) -> None:
    run_id = info["id"]
    text = (rt.home / "runs" / run_id / "dataflow.yml").read_text(encoding="utf-8")
    dataflow = rt.load(info["path"], text)
    if not dataflow.recover:
        log.info("run %s: recover: false, not recovered", run_id)
        rt.store.update_run(run_id, status="failed", error="interrupted (recover: false)")
        return
    run = rt.make_run(run_id, info["name"], dataflow, rt.store.run_env(run_id))
    for node in info["nodes"]:
        slot = run.slots.get(node["id"])
        if slot is not None:
            slot.generation = int(node["generation"])
            slot.restarts = int(node["restarts"])
    state = None
    if info["status"] != "interrupted":
        state = await probe_keeper(rt.context, run.keeper_endpoint)
    if state is None:
        killed = kill_stale_processes(run)
        log.info("run %s: no keeper: %d stale processes killed; restarting it", run_id, killed)
    else:
        log.info("run %s: adopting its keeper and living nodes", run_id)
    rt.store.update_run(run_id, status="running", recovered=1, ended=None)
    run.status = RunStatus.RUNNING if state is not None else RunStatus.STARTING
    await rt.resume_run(run, state)


def kill_stale_processes(run: Run) -> int:
    """SIGKILL the process groups of anything still running for this run; how many."""
    marker = f"FLOW_DATAFLOW={run.id}".encode()
    keeper_mark = str(run.sockets).encode()
    me = os.getpid()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ or (b"daemon.keeper" in cmdline and keeper_mark in cmdline):
            with contextlib.suppress(OSError):
                os.killpg(int(entry), signal.SIGKILL)
                killed += 1
    return killed
