"""Control requests about whole runs and the daemon itself: ping, start, stop, list, wait..."""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from daemon import __version__
from daemon.control.foreground_stop import stop_foreground
from daemon.model import pids
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest, BrokenInvariant, ShuttingDown, UnknownNode
from daemon.model.run_names import refusal
from daemon.model.run_rows import newest_within
from daemon.model.states import RunStatus
from daemon.run.recovery import settle_foreground
from daemon.run.runtime import Runtime
from daemon.run.supervisor import DEFAULT_GRACE_S
from node_sdk import paths

MAX_WAIT_S = 60.0


def _grace(value: float | None) -> float:
    return DEFAULT_GRACE_S if value is None else value


async def ping(rt: Runtime, req: rq.Ping) -> rp.PingReply:
    return rp.PingReply(pid=os.getpid(), version=__version__, home=str(rt.home),
                        stopping=rt.shutting_down)  # fmt: skip


async def status(rt: Runtime, req: rq.Status) -> rp.StatusReply:
    degraded = list(rt.degraded)
    for run in rt.runs.values():
        if run.degraded:
            degraded.append(f"run {run.name or run.id}: {run.degraded}")
    return rp.StatusReply(
        pid=os.getpid(),
        version=__version__,
        home=str(rt.home),
        uptime_s=round(time.time() - rt.started_at, 3),
        runs_active=len(rt.active_runs()),
        degraded=degraded,
        metrics=rt.metrics_url,
    )


async def start(rt: Runtime, req: rq.Start) -> rp.RunReply:
    if not os.path.isabs(req.path):
        raise BadRequest(f"path {req.path!r} must be absolute")
    if req.record is not None and not os.path.isabs(req.record):
        raise BadRequest(f"record path {req.record!r} must be absolute")
    if (why := refusal(req.name)) is not None:
        raise BadRequest(f"run name {why}")
    run = await rt.start_run(req.path, req.text, req.name, dict(req.env), req.record)
    return rp.RunReply(run=run.info())


async def stop(rt: Runtime, req: rq.Stop) -> rp.RunReply:
    info = rt.resolve(req.run)
    foreground = pids.foreground_process(info)
    if foreground is not None:
        pid, alive = foreground
        if alive:  # a `flow run`'s: its own process stops it
            return rp.RunReply(run=await stop_foreground(rt, info, pid, req.force))
        settle_foreground(rt.store, info)  # it died (SIGKILL) without recording its end
        return rp.RunReply(run=rt.wait_info(info["id"]))
    await rt.recovered(info["id"])  # its keeper stalled across a restart: adopted first
    run = rt.live_run(req.run)
    await rt.stop_run(run, _grace(req.grace), req.force)
    return rp.RunReply(run=rt.wait_info(run.id))


async def stop_all(rt: Runtime, req: rq.StopAll) -> rp.RunsReply:
    await rt.recovered()  # a run whose stalled keeper is waited for is stopped too
    runs = rt.active_runs()
    async with trio.open_nursery() as nursery:
        for run in runs:
            nursery.start_soon(rt.stop_run, run, _grace(req.grace), req.force)
    return rp.RunsReply(runs=[rt.wait_info(run.id) for run in runs])


async def restart(rt: Runtime, req: rq.Restart) -> rp.RunReply:
    """A new run of an old one's file: the text sent (the file as it is now, validated
    before the old run is touched: an invalid file leaves it running) or, without text,
    the copy stored when the old run started."""
    info = rt.resolve(req.run)
    if req.record is not None and not os.path.isabs(req.record):
        raise BadRequest(f"record path {req.record!r} must be absolute")
    if req.text is not None:
        text: str = req.text
        await rt.load(info["path"], text)  # DataflowInvalid: nothing stopped, nothing started
    else:
        copy = paths.dataflow_copy(rt.home, info["id"])
        try:
            text = copy.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadRequest(
                f"run {info['id']}: cannot read its dataflow copy {copy}: {exc}"
            ) from None
    if rt.shutting_down:  # refused before the old run's grace is waited, not after it
        raise ShuttingDown()
    live = rt.runs.get(info["id"])
    if live is not None and live.status.active:
        await rt.stop_run(live, _grace(req.grace), False)
    env = rt.store.run_env(info["id"])
    run = await rt.start_run(info["path"], text, info["name"], env, req.record)
    return rp.RunReply(run=run.info())


async def list_runs(rt: Runtime, req: rq.List) -> rp.RunsReply:
    """The runs, the newest that fit in LIST_REPLY_BYTES: a larger reply would be dropped."""
    runs = [_as_seen(rt, info) for info in rt.store.runs(include_ended=req.all)]
    kept = newest_within(runs)
    return rp.RunsReply(runs=kept, omitted=len(runs) - len(kept))


def _as_seen(rt: Runtime, info: dict[str, Any]) -> dict[str, Any]:
    """A starting run as it is: its spawned nodes that have not connected yet are
    `starting`, not `running` (the store says `running` from the spawn on); once all have,
    the run is released in the same moment, so it shows `running`."""
    info = rt.as_known(info)
    run = rt.runs.get(info["id"])
    if run is None or run.status is not RunStatus.STARTING or run.stop_requested:
        return info
    waiting = {s.id for s in run.spawned if not s.settled.is_set()}
    nodes = [
        {**n, "status": "starting"} if n["id"] in waiting and n["status"] == "running" else n
        for n in info["nodes"]
    ]
    return {**info, "nodes": nodes, "status": "starting" if waiting else "running"}


async def logs(rt: Runtime, req: rq.Logs) -> rp.LogsReply:
    info = rt.resolve(req.run)
    node_ids = [n["id"] for n in info["nodes"]]
    if req.node is not None:
        if req.node not in node_ids:
            raise UnknownNode(info["name"] or info["id"], req.node, node_ids)  # exit 1
        node_ids = [req.node]
    files = {n: str(paths.node_log(rt.home, info["id"], n)) for n in node_ids}
    placer = rt.placer
    if placer is not None:  # nodes on other machines: local copies of their logs, at once
        machines = {n["id"]: n.get("machine") for n in info["nodes"]}
        follow = req.follow and info.get("ended") is None  # an ended run: its tail only

        async def copy(node_id: str, machine: str) -> None:
            assert placer is not None
            files[node_id] = await placer.log_copy(info["id"], machine, node_id, follow=follow)

        async with trio.open_nursery() as nursery:
            for node_id in node_ids:
                machine = machines.get(node_id)
                if machine and machine != placer.here:
                    nursery.start_soon(copy, node_id, machine)
    return rp.LogsReply(run=info, files=files)


async def wait(rt: Runtime, req: rq.Wait) -> rp.WaitReply:
    info = rt.resolve(req.run)
    run = rt.runs.get(info["id"])
    if run is not None:
        with trio.move_on_after(min(req.timeout, MAX_WAIT_S)):
            await run.done.wait()
        info = rt.wait_info(run.id)
    return rp.WaitReply(run=info, done=info["status"] not in ("starting", "running"))


async def shutdown(rt: Runtime, req: rq.Shutdown) -> rp.Empty:
    grace = _grace(req.grace)
    rt.shutting_down = True
    try:
        await stop_all(rt, rq.StopAll(grace=rq.Seconds(grace), force=grace == 0))
    except BaseException:  # the daemon goes on serving, as before the request: it starts again
        rt.shutting_down = False
        raise
    rt.shutdown_requested.set()
    return rp.Empty()


async def inject_fatal(rt: Runtime, req: rq.InjectFatal) -> rp.Empty:
    """Test hook (only with FLOW_TEST_HOOKS=1): a broken invariant, to test the fatal path."""
    raise BrokenInvariant("injected by a test: a broken internal invariant")


RUN_HANDLERS = {
    rq.Ping: ping,
    rq.Status: status,
    rq.Start: start,
    rq.Stop: stop,
    rq.StopAll: stop_all,
    rq.Restart: restart,
    rq.List: list_runs,
    rq.Logs: logs,
    rq.Wait: wait,
    rq.Shutdown: shutdown,
    rq.InjectFatal: inject_fatal,
}
