"""`flow topic info` (one output: counts, rate, receivers, queues) and `flow topic pub`
(where a user's messages go into an input of a live run).

`pub` needs nothing more than the input's endpoint: the CLI sends to it as one more source
of that input, with a name of its own, and ends with end-of-stream, which closes only that
source (node_sdk/inbox.py). The daemon is per user and its socket folder is private, so
only the run's own user can reach the daemon or the input.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.descriptor import OutputRef
from daemon.model.errors import BadRequest, UnknownNode, no_port

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime

log = logging.getLogger(__name__)

OBSERVER_PREFIX = "observer-"  # the receiver name of an observer's edge (topics.py)


def _port(text: str, what: str) -> tuple[str, str]:
    node, sep, port = text.partition("/")
    if not sep or not node or not port:
        raise BadRequest(f"{what} {text!r}: expected NODE/{what.upper()}")
    return node, port


async def topic_info(rt: Runtime, req: rq.TopicInfo) -> rp.TopicInfoReply:
    run = rt.live_run(req.run)
    node, output = _port(req.topic, "output")
    slot = run.slots.get(node)
    if slot is None:
        raise UnknownNode(run.name or run.id, node, run.visible_ids())
    if output not in slot.spec.outputs:
        raise no_port(node, "output", output, list(slot.spec.outputs))
    receivers = [
        rp.TopicReceiver(f"{other.id}/{item.id}", item.queue_policy, item.queue_size)
        for other in run.slots.values()
        for item in other.spec.inputs
        if isinstance(item.source, OutputRef)
        and (item.source.node, item.source.output) == (node, output)
    ]  # fmt: skip
    observers = sum(
        1
        for sender, wire in run.live_edges
        if (sender, wire.output) == (node, output) and wire.edge.node.startswith(OBSERVER_PREFIX)
    )
    stats = slot.current_stats or {}
    counts = (stats.get("outputs") or {}).get(output)
    rate = (stats.get("rates") or {}).get(f"out:{output}")
    return rp.TopicInfoReply(
        run=run.id,
        topic=f"{node}/{output}",
        node_status=str(slot.status),
        sent=None if counts is None else int(counts.get("sent", 0)),
        dropped=None if counts is None else int(counts.get("dropped", 0)),
        rate=None if rate is None else float(rate),
        receivers=receivers,
        observers=observers,
    )


async def topic_publish(rt: Runtime, req: rq.TopicPublish) -> rp.PublishTarget:
    run = rt.live_run(req.run)
    node, input_id = _port(req.target, "input")
    slot = run.slots.get(node)
    if slot is None:
        raise UnknownNode(run.name or run.id, node, run.visible_ids())
    item = next((i for i in slot.spec.inputs if i.id == input_id), None)
    if item is None:
        raise no_port(node, "input", input_id, [i.id for i in slot.spec.inputs])
    if not isinstance(item.source, OutputRef):
        raise BadRequest(f"input {node}/{input_id} is a timer: it takes no messages")
    if not (slot.alive or slot.attached):
        raise BadRequest(f"node {node!r} is {slot.status}: nothing reads {node}/{input_id}")
    if run.placed is not None and run.placed.is_remote(node):
        # its input is a socket on its own machine (or CURVE tcp:// with machine keys)
        machine = run.placed.placement.machine_of[node]
        raise BadRequest(f"node {node!r} runs on machine {machine}: flow topic pub reaches "
                         "the nodes of this machine only (docs/cluster.md)")  # fmt: skip
    source = f"~pub-{secrets.token_hex(4)}"  # `~` is no node id's: never a real source
    log.info("run %s: flow topic pub into %s/%s as %s", run.id, node, input_id, source)
    return rp.PublishTarget(
        endpoint=run.input_endpoint(node, input_id),
        policy=item.queue_policy,
        queue_size=item.queue_size,
        source=source,
    )


TOPIC_TOOL_HANDLERS = {rq.TopicInfo: topic_info, rq.TopicPublish: topic_publish}
