"""Control requests about one node of a live run: list, info, stop, restart (SPEC 8)."""

from __future__ import annotations

from typing import Any

import trio

from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest, NodeNotRunning, UnknownNode
from daemon.model.states import NodeStatus, RunStatus
from daemon.run.runtime import Runtime
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import DEFAULT_GRACE_S, Run
from node_sdk import channel

Body = dict[str, Any]

RECORD_WAIT_S = 5.0
POLL_S = 0.05  # how often a stopped dynamic node's detach is looked for


def live_slot(rt: Runtime, ref: str, node: str) -> tuple[Run, NodeSlot]:
    """A live run's node by run reference and id; UnknownNode when it has none."""
    run = rt.live_run(ref)
    slot = run.slots.get(node)
    if slot is None or node in run.removed:
        raise UnknownNode(run.name or run.id, node, run.visible_ids())
    return run, slot


def _running_slot(rt: Runtime, ref: str, node: str) -> tuple[Run, NodeSlot]:
    """A node a stop or restart applies to: running, or waiting out its restart delay."""
    run, slot = live_slot(rt, ref, node)
    if not slot.alive and slot.status is not NodeStatus.RESTARTING:
        label = run.name or run.id
        if slot.status.finished:  # a failed operation (exit 1), not bad input
            raise NodeNotRunning(
                f"node {slot.id!r} of run {label} is not running: it has ended ({slot.status}); "
                f"an ended node is not started again in its run (its inputs closed): "
                f"`flow restart {label}` starts the whole run again"
            )
        raise BadRequest(f"node {slot.id!r} of run {label} is not running")
    return run, slot


def node_detail(run: Run, slot: NodeSlot) -> Body:
    """What `flow node info` shows: the stored record, the wiring, the latest statistics."""
    stored = next(n for n in run.info()["nodes"] if n["id"] == slot.id)
    waited_for = run.status is RunStatus.STARTING and not slot.settled.is_set()
    if waited_for and stored["status"] == "running":  # spawned, not connected yet
        stored = {**stored, "status": "starting"}
    if not (slot.alive or slot.attached):  # the store keeps its last pid: not shown as live
        stored = {**stored, "pid": None}
    return {
        **stored,
        "run": run.id,
        "inputs": {i.id: _source_text(i.source) for i in slot.spec.inputs},
        "outputs": list(slot.spec.outputs),
        "stats": slot.current_stats,
    }


def _source_text(source: Any) -> str:
    spec = getattr(source, "spec", None)
    return str(spec) if spec is not None else f"{source.node}/{source.output}"


async def node_list(rt: Runtime, req: rq.NodeList) -> rp.NodeListReply:
    run = rt.live_run(req.run)
    return rp.NodeListReply(
        run=run.id,
        nodes=[node_detail(run, s) for s in run.slots.values() if s.id not in run.removed],
    )


async def node_info(rt: Runtime, req: rq.NodeInfo) -> rp.NodeReply:
    run, slot = live_slot(rt, req.run, req.node)
    return rp.NodeReply(node=node_detail(run, slot))


async def node_stop(rt: Runtime, req: rq.NodeStop) -> rp.NodeReply:
    run, slot = live_slot(rt, req.run, req.node)
    if slot.attached:  # a dynamic node's process is not flow's to signal: STOP, then its bye
        run.send_to_node(slot, channel.Stop())
        with trio.move_on_after(DEFAULT_GRACE_S if req.grace is None else req.grace):
            # a detach is a state of the slot, with no event of its own: looked for
            while slot.attached:  # noqa: ASYNC110
                await trio.sleep(POLL_S)
        return rp.NodeReply(node=node_detail(run, slot))
    run, slot = _running_slot(rt, req.run, req.node)
    await slot.terminate(DEFAULT_GRACE_S if req.grace is None else req.grace)
    with trio.move_on_after(RECORD_WAIT_S):  # its task records the exit just after
        await slot.finished.wait()
    return rp.NodeReply(node=node_detail(run, slot))


async def node_restart(rt: Runtime, req: rq.NodeRestart) -> rp.NodeReply:
    run, slot = live_slot(rt, req.run, req.node)
    if slot.spec.is_dynamic:
        raise BadRequest(f"node {slot.id!r} of run {run.name or run.id} is dynamic: its "
                         "process is not flow's to start (stop it, then attach it again)")
    run, slot = _running_slot(rt, req.run, req.node)
    await slot.restart_now(DEFAULT_GRACE_S if req.grace is None else req.grace)
    return rp.NodeReply(node=node_detail(run, slot))


NODE_HANDLERS = {
    rq.NodeList: node_list,
    rq.NodeInfo: node_info,
    rq.NodeStop: node_stop,
    rq.NodeRestart: node_restart,
}
