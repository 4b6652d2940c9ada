"""Dynamic nodes (SPEC 6): attach a process to a `path: dynamic` node, detach it, refuse.

Attaching gives the slot a new generation and the process a node configuration; the
senders of its inputs get live `wire` messages (and `unwire` when it detaches), so
upstream nodes send to it only while it is attached. A slot is freed when the process
closes, exits, crashes or stops reporting (heartbeat: any message, at least every second).
Every refusal is a one-line answer to the caller and a log line; nothing else is touched.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import trio

from daemon.model import routing
from daemon.model.descriptor import OutputRef
from daemon.model.errors import RecoverableError, ambiguous_run
from daemon.model.states import NodeStatus
from daemon.run.node_channel import NoDynamicNode
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run
from node_sdk import channel, config
from node_sdk.errors import NodeError

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime

log = logging.getLogger(__name__)

HEARTBEAT_MISSES_S = 3.0  # three missed one-second reports
WATCH_EVERY_S = 0.5


class AttachRefused(RecoverableError):
    """A dynamic attach that cannot be granted; the message is the caller's error line."""


class NoSuchNode(AttachRefused, NoDynamicNode):
    """No run of this daemon has that dynamic node: a member asks its coordinator."""


def find_dynamic_slot(rt: Runtime, node: str, dataflow: str | None) -> tuple[Run, NodeSlot]:
    """The run and slot a `Node(node, dataflow=...)` attaches to, or the one-line refusal."""
    if dataflow:
        runs = [r for r in rt.runs.values() if r.status.active and _names(r, dataflow)]
        if not runs:
            raise NoSuchNode(f"no running dataflow with ID or name {dataflow}")
        exact = [r for r in runs if dataflow in (r.id, r.name)]
        if len(runs) > 1 and len(exact) != 1:  # as the CLI: a prefix must name one run
            raise AttachRefused(ambiguous_run(dataflow, [r.id for r in runs]))
        run = (exact or runs)[0]
        slot = run.slots.get(node)
        label = run.name or run.id
        if slot is None:
            raise AttachRefused(f"no node {node} in dataflow {label}")
        if node in run.removed:
            raise AttachRefused(f"node {node} was removed from dataflow {label}")
        if not slot.spec.is_dynamic:
            raise AttachRefused(f"node {node} in dataflow {label} is not dynamic")
        return run, slot
    candidates = [
        (r, r.slots[node])
        for r in rt.runs.values()
        if r.status.active and node in r.slots and r.slots[node].spec.is_dynamic
        and node not in r.removed
    ]
    if not candidates:
        raise NoSuchNode(f"no running dataflow has a dynamic node {node}")
    if len(candidates) > 1:
        names = ", ".join(r.name or r.id for r, _ in candidates)
        raise AttachRefused(
            f"node id {node} is dynamic in several running dataflows ({names}): pass dataflow="
        )
    return candidates[0]


def _names(run: Run, ref: str) -> bool:
    return ref in (run.id, run.name) or (len(ref) >= 4 and run.id.startswith(ref))


def attach(rt: Runtime, message: channel.Attach) -> config.NodeConfig:
    """Grant an attach request (decoded and bounded by `node_sdk.channel`): the node's
    configuration, which the reply carries."""
    run, slot = find_dynamic_slot(rt, message.node, message.dataflow or None)
    machine = machine_of(run, slot)
    if machine is not None:
        label = run.name or run.id
        raise AttachRefused(f"node {slot.id} in dataflow {label} is placed on machine "
                            f"{machine}: attach it there (with its FLOW_HOME)")  # fmt: skip
    return grant(run, slot, message.pid)


def readopt(run: Run, slot: NodeSlot, pid: int) -> None:
    """A process that was attached to `slot` when its daemon died, alive now: attached
    again with its own generation (its receivers know it; a new attach takes the next),
    its senders wired to it again. Its heartbeat frees the slot if it is not reporting."""
    slot.attached = True
    slot.last_seen = time.monotonic()
    slot.transition(NodeStatus.RUNNING, pid=pid)
    slot.connected.set()  # its DEALER connects to this daemon by itself, and what it is
    run.unheard.add(slot.id)  # sent before that is lost: sent again once it is heard from
    _wire_inputs(run, slot)
    log.info("run %s: dynamic node %s attached again (pid %d)", run.id, slot.id, pid)


def _wire_inputs(run: Run, slot: NodeSlot) -> None:
    placement = run.placed.placement if run.placed is not None else None
    for spec in slot.spec.inputs:
        if isinstance(spec.source, OutputRef):
            edge = routing.edge_to(slot.id, spec, run.input_endpoint(slot.id, spec.id))
            edge = routing.keyed_edge(edge, placement)  # on another machine: its key
            run.add_live_edge(spec.source.node, spec.source.output, edge)


def machine_of(run: Run, slot: NodeSlot) -> str | None:
    """The member machine a node of a placed run runs on; None for this daemon's own."""
    placed = run.placed
    return placed.placement.machine_of[slot.id] if placed and placed.is_remote(slot.id) else None


def grant(run: Run, slot: NodeSlot, pid: int | None) -> config.NodeConfig:
    """Attach a process to `slot` (`pid` None: it runs on another machine) and wire its
    senders to it: its configuration, or the one-line refusal."""
    node = slot.id
    if slot.attached:
        raise AttachRefused(f"node {node} in dataflow {run.name or run.id} is already attached")
    slot.attach(pid)
    _wire_inputs(run, slot)
    log.info("run %s: dynamic node %s attached (pid %s)", run.id, slot.id, slot.pid)
    # the daemon's own configuration goes through the shared decoder: a config the node
    # would refuse is refused here, in one line, instead of failing in the node
    try:
        return config.from_json(run.config_of(slot), f"configuration of node {node}")
    except NodeError as exc:
        slot.detach(f"bad configuration: {exc}")
        raise AttachRefused(str(exc)) from None


def process_gone(pid: int) -> bool:
    """Whether process `pid` of this machine has ended (a process of another user: no)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's: not ours to judge
    return False


async def watch_dynamic_nodes(rt: Runtime) -> None:
    """Detach dynamic nodes whose process died or whose reports stopped (bounded misses)."""
    while True:
        now = time.monotonic()
        for run in list(rt.runs.values()):
            for slot in run.slots.values():
                if not slot.attached:
                    continue
                if slot.pid is not None and process_gone(slot.pid):
                    slot.detach(f"process {slot.pid} is gone")
                elif now - slot.last_seen > HEARTBEAT_MISSES_S:
                    slot.detach(f"no report for {HEARTBEAT_MISSES_S:g}s")
        await trio.sleep(WATCH_EVERY_S)
