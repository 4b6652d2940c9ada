"""One function per control request type; each returns a reply body or raises FlowError."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from daemon import __version__
from daemon.control.edits import EDIT_HANDLERS
from daemon.control.nodes import NODE_HANDLERS
from daemon.control.top import top
from daemon.control.topics import TOPIC_HANDLERS
from daemon.errors import BadRequest, BrokenInvariant
from daemon.model.protocol import field_bool, field_float, field_optional_str, field_str
from daemon.run.runtime import Runtime
from daemon.run.supervisor import DEFAULT_GRACE_S

Body = dict[str, Any]
Handler = Callable[[Runtime, Body], Awaitable[Body]]

MAX_WAIT_S = 60.0


async def ping(rt: Runtime, body: Body) -> Body:
    return {"pid": os.getpid(), "version": __version__, "home": str(rt.home)}


async def status(rt: Runtime, body: Body) -> Body:
    degraded = list(rt.degraded)
    for run in rt.runs.values():
        if run.degraded:
            degraded.append(f"run {run.name or run.id}: {run.degraded}")
    return {
        "pid": os.getpid(),
        "version": __version__,
        "home": str(rt.home),
        "uptime_s": round(time.time() - rt.started_at, 3),
        "runs_active": len(rt.active_runs()),
        "degraded": degraded,
    }


async def start(rt: Runtime, body: Body) -> Body:
    path = field_str(body, "path")
    text = field_str(body, "text")
    name = field_optional_str(body, "name")
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise BadRequest("field 'env' must map strings to strings")
    if not os.path.isabs(path):
        raise BadRequest(f"path {path!r} must be absolute")
    run = await rt.start_run(path, text, name, env)
    return {"run": run.info()}


async def stop(rt: Runtime, body: Body) -> Body:
    ref = field_str(body, "run")
    grace = field_float(body, "grace", DEFAULT_GRACE_S)
    run = rt.live_run(ref)
    await rt.stop_run(run, grace, field_bool(body, "force"))
    return {"run": rt.wait_info(run.id)}


async def stop_all(rt: Runtime, body: Body) -> Body:
    grace = field_float(body, "grace", DEFAULT_GRACE_S)
    force = field_bool(body, "force")
    runs = rt.active_runs()
    async with trio.open_nursery() as nursery:
        for run in runs:
            nursery.start_soon(rt.stop_run, run, grace, force)
    return {"runs": [rt.wait_info(run.id) for run in runs]}


async def restart(rt: Runtime, body: Body) -> Body:
    ref = field_str(body, "run")
    info = rt.resolve(ref)
    live = rt.runs.get(info["id"])
    if live is not None and live.status.active:
        await rt.stop_run(live, DEFAULT_GRACE_S, False)
    copy = rt.home / "runs" / info["id"] / "dataflow.yml"
    try:
        text = copy.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"run {info['id']}: cannot read its dataflow copy {copy}: {exc}") from None
    run = await rt.start_run(info["path"], text, info["name"], rt.store.run_env(info["id"]))
    return {"run": run.info()}


async def list_runs(rt: Runtime, body: Body) -> Body:
    return {"runs": rt.store.runs(include_ended=field_bool(body, "all"))}


async def logs(rt: Runtime, body: Body) -> Body:
    ref = field_str(body, "run")
    node = field_optional_str(body, "node")
    info = rt.resolve(ref)
    node_ids = [n["id"] for n in info["nodes"]]
    if node is not None:
        if node not in node_ids:
            raise BadRequest(f"no node {node!r} in run {info['name'] or info['id']}")
        node_ids = [node]
    folder = rt.home / "runs" / info["id"] / "logs"
    return {"run": info, "files": {n: str(folder / f"{n}.log") for n in node_ids}}


async def wait(rt: Runtime, body: Body) -> Body:
    ref = field_str(body, "run")
    timeout = min(field_float(body, "timeout", 0.0), MAX_WAIT_S)
    info = rt.resolve(ref)
    run = rt.runs.get(info["id"])
    if run is not None:
        with trio.move_on_after(timeout):
            await run.done.wait()
        info = rt.wait_info(run.id)
    return {"run": info, "done": info["status"] not in ("starting", "running")}


async def shutdown(rt: Runtime, body: Body) -> Body:
    grace = field_float(body, "grace", DEFAULT_GRACE_S)
    await stop_all(rt, {"grace": grace, "force": grace == 0})
    rt.shutdown_requested.set()
    return {}


async def inject_fatal(rt: Runtime, body: Body) -> Body:
    """Test hook (only with FLOW_TEST_HOOKS=1): a broken invariant, to test the fatal path."""
    raise BrokenInvariant("injected by a test: a broken internal invariant")


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "status": status,
    "start": start,
    "stop": stop,
    "stop_all": stop_all,
    "restart": restart,
    "list": list_runs,
    "logs": logs,
    "wait": wait,
    "shutdown": shutdown,
    **NODE_HANDLERS,
    **TOPIC_HANDLERS,
    "top": top,
    **EDIT_HANDLERS,
}

TEST_HANDLERS: dict[str, Handler] = {"_inject_fatal": inject_fatal}


def handlers() -> dict[str, Handler]:
    if os.environ.get("FLOW_TEST_HOOKS") == "1":
        return {**HANDLERS, **TEST_HANDLERS}
    return HANDLERS
