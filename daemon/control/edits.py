"""Edits of a running graph (SPEC 8, `flow node add|remove|connect|disconnect`).

Each edit is validated against the running graph first and refused with one line when it
would break it; the run is then changed in place: new inputs get new endpoints, senders
get live `wire`/`unwire` messages, receivers `add_input` or `upstream_done`, and the run's
dataflow model is replaced so that restarted nodes get the edited wiring in their config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model import routing
from daemon.model.descriptor import OutputRef
from daemon.model.errors import BadRequest, UnknownNode, no_port
from daemon.model.node_snippet import parse_added_node
from daemon.model.settings import current as settings
from daemon.model.states import NodeStatus
from daemon.run import graph_edits
from daemon.run.connect_wait import connect_timeout
from daemon.run.runtime import Runtime, served_machines
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import DEFAULT_GRACE_S, Run
from node_sdk import channel

log = logging.getLogger(__name__)


def _ref(text: str, what: str) -> tuple[str, str]:
    node, sep, port = text.partition("/")
    if not sep or not node or not port:
        raise BadRequest(f"{what} {text!r}: expected NODE/{what.upper()}")
    return node, port


def _slot(run: Run, node: str) -> NodeSlot:
    slot = run.slots.get(node)
    if slot is None or node in run.removed:
        raise UnknownNode(run.name or run.id, node, run.visible_ids())
    return slot


def _not_ended(run: Run, slot: NodeSlot, role: str) -> None:
    """Refuse an edge to or from a node that has ended for good: nothing would ever flow on
    it, and `flow node restart` takes only a running node, so it would stay dead."""
    if slot.finished.is_set():
        raise BadRequest(
            f"node {slot.id!r} of run {run.name or run.id} has ended ({slot.status.value}):"
            f" it {role} nothing any more"
        )


async def node_add(rt: Runtime, req: rq.NodeAdd) -> rp.NodeIdReply:
    run = rt.live_run(req.run)
    if not os.path.isabs(req.path):
        raise BadRequest(f"path {req.path!r} must be absolute")
    spec = parse_added_node(graph_edits.present(run), Path(req.path), req.text,
                            machines=served_machines())  # fmt: skip
    for item in spec.inputs:  # its senders must still be there to send to it
        if isinstance(item.source, OutputRef):
            _not_ended(run, _slot(run, item.source.node), "sends")
    if run.nursery is None:  # its nodes are still being spawned
        raise BadRequest(f"run {run.name or run.id} is still starting: add nodes once it runs")
    # its row first: a store that refuses it (a full disk) refuses the edit, which then
    # has changed nothing; what was held for a node of that id removed before is dropped
    run.unsaved.nodes.pop(spec.id, None)
    run.store.add_node(run.id, spec.id, len(run.slots), process=not spec.connects)
    slot = graph_edits.add_node(run, spec)
    made = {i.id: run.input_endpoint(spec.id, i.id) for i in spec.inputs
            if isinstance(i.source, OutputRef)}  # fmt: skip
    graph_edits.journal(run, {"op": "add", "path": req.path, "text": req.text,
                              "endpoints": made})  # fmt: skip
    run.start_slot(slot)
    _wire_inputs(run, spec.id)
    # answer once the node listens: a `node connect` sent right after this reply would
    # otherwise reach a process that has not said hello, and its add_input would be lost
    await _until_settled(slot, "is added but ")
    log.info("run %s: node %s added", run.id, spec.id)
    return rp.NodeIdReply(node=spec.id)


async def _until_settled(slot: NodeSlot, added: str = "") -> None:
    """Wait until a starting node has connected (or ended), within its connect timeout;
    a dynamic node, which attaches when its own process says so, and a process node, which
    never connects (its keeper takes its edges: `Run.wire_sender`), are not waited for."""
    if slot.spec.is_dynamic or not slot.spec.connects or slot.settled.is_set():
        return
    with trio.move_on_after(connect_timeout(slot, settings().start_timeout)):
        await slot.settled.wait()
    if not slot.settled.is_set():
        raise BadRequest(
            f"node {slot.id!r} {added}has not connected within "
            f"{connect_timeout(slot, settings().start_timeout):g}s (see `flow logs` for it)"
        )


def _wire_inputs(run: Run, node: str) -> None:
    """Tell the senders of `node`'s inputs to send to it (their configs predate it)."""
    for item in run.slots[node].spec.inputs:
        if isinstance(item.source, OutputRef):
            edge = routing.edge_to(node, item, run.input_endpoint(node, item.id))
            sender = run.slots[item.source.node]
            run.wire_sender(sender, channel.Wire(item.source.output, edge))


async def node_remove(rt: Runtime, req: rq.NodeRemove) -> rp.NodeIdReply:
    run = rt.live_run(req.run)
    slot = _slot(run, req.node)
    for item in slot.spec.inputs:
        if isinstance(item.source, OutputRef):
            endpoint = run.input_endpoint(slot.id, item.id)
            sender = run.slots.get(item.source.node)
            if sender is not None:
                run.unwire_sender(sender, channel.Unwire(item.source.output, endpoint))
    slot.forget_bye()  # whatever it says, its receivers are closed by the daemon
    if slot.spec.is_dynamic:
        _end_dynamic(run, slot)
    else:
        await slot.terminate(DEFAULT_GRACE_S)
        await slot.finished.wait()
    for edge in [(o, r) for o in slot.spec.outputs for r in _receivers(run, slot.id, o)]:
        output, (receiver, input_id) = edge
        target = run.slots[receiver]
        run.send_to_node(target, channel.UpstreamDone(input_id, f"{slot.id}/{output}"))
    run.removed.add(slot.id)  # out of `flow node list` and `node info` from now on
    run.record_node(slot.id, {"removed": 1})
    graph_edits.journal(run, {"op": "remove", "node": slot.id})
    log.info("run %s: node %s removed", run.id, slot.id)
    return rp.NodeIdReply(node=slot.id)


def _end_dynamic(run: Run, slot: NodeSlot) -> None:
    """A dynamic node has no process of the daemon's to wait for (nothing ends its slot):
    an attached one is told to stop and detached, and its slot ends here, stopped."""
    if slot.attached:
        run.send_to_node(slot, channel.Stop())
        slot.detach("removed from the run")
    slot.transition(NodeStatus.STOPPED, pid=None)
    slot.finished.set()


def _receivers(run: Run, node: str, output: str) -> list[tuple[str, str]]:
    return [
        (other.id, item.id)
        for other in run.slots.values()
        for item in other.spec.inputs
        if isinstance(item.source, OutputRef)
        and (item.source.node, item.source.output) == (node, output)
    ]


async def node_connect(rt: Runtime, req: rq.NodeConnect) -> rp.EdgeReply:
    run = rt.live_run(req.run)
    src_node, output = _ref(req.source, "output")
    dst_node, input_id = _ref(req.target, "input")
    sender, receiver = _slot(run, src_node), _slot(run, dst_node)
    if output not in sender.spec.outputs:
        raise no_port(src_node, "output", output, list(sender.spec.outputs))
    if src_node == dst_node:
        raise BadRequest(f"input {input_id!r} of node {dst_node!r} cannot take its own output")
    _not_ended(run, sender, "sends")
    _not_ended(run, receiver, "reads")
    for slot in (sender, receiver):  # an edit racing a node's start must not be lost
        await _until_settled(slot)
    source = OutputRef(node=src_node, output=output)
    same = [item for item in receiver.spec.inputs if item.id == input_id]
    if any(item.source == source for item in same):
        raise BadRequest(f"{source} is already connected to {dst_node}/{input_id}")
    if same and not isinstance(same[0].source, OutputRef):
        raise BadRequest(
            f"input {input_id!r} of node {dst_node!r} is a timer ({same[0].source.spec}):"
            " disconnect it first"
        )
    item, endpoint = graph_edits.connect(run, source, dst_node, input_id)
    graph_edits.journal(run, {"op": "connect", "source": str(source), "target": req.target,
                              "endpoints": {input_id: endpoint}})  # fmt: skip
    run.send_to_node(receiver, channel.AddInput(routing.data_input(item, source, endpoint)))
    run.wire_sender(sender, channel.Wire(output, routing.edge_to(dst_node, item, endpoint)))
    log.info("run %s: connected %s/%s -> %s/%s", run.id, src_node, output, dst_node, input_id)
    return rp.EdgeReply(source=f"{src_node}/{output}", target=f"{dst_node}/{input_id}")


async def node_disconnect(rt: Runtime, req: rq.NodeDisconnect) -> rp.EdgeReply:
    run = rt.live_run(req.run)
    src_node, output = _ref(req.source, "output")
    dst_node, input_id = _ref(req.target, "input")
    receiver, sender = _slot(run, dst_node), _slot(run, src_node)
    source = OutputRef(node=src_node, output=output)
    if not graph_edits.disconnect(run, source, dst_node, input_id):
        raise BadRequest(f"{source} is not connected to {dst_node}/{input_id}")
    graph_edits.journal(run, {"op": "disconnect", "source": str(source), "target": req.target})
    endpoint = run.input_endpoint(dst_node, input_id)
    run.unwire_sender(sender, channel.Unwire(output, endpoint))
    run.send_to_node(receiver, channel.UpstreamDone(input_id, str(source)))
    log.info("run %s: disconnected %s/%s -> %s/%s", run.id, src_node, output, dst_node, input_id)
    return rp.EdgeReply(source=f"{src_node}/{output}", target=f"{dst_node}/{input_id}")


EDIT_HANDLERS = {
    rq.NodeAdd: node_add,
    rq.NodeRemove: node_remove,
    rq.NodeConnect: node_connect,
    rq.NodeDisconnect: node_disconnect,
}
