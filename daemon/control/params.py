"""Control requests about a node's parameters: list, set, delete (docs/parameters.md)."""

from __future__ import annotations

from daemon.control.nodes import live_slot
from daemon.model import params as model
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest, UnknownParam
from daemon.run import params
from daemon.run.runtime import Runtime
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run

MAX_ACK_S = 60.0  # a wait longer than this is a node that does not read its events


def _reply(rt: Runtime, run: Run, slot: NodeSlot) -> rp.ParamsReply:
    values = params.current(rt.store, run.id, slot)
    texts = {key: rp.ParamText(text) for key, text in values.items()}
    return rp.ParamsReply(run=run.id, node=slot.id, params=texts)


async def param_list(rt: Runtime, req: rq.ParamList) -> rp.ParamsReply:
    run, slot = live_slot(rt, req.run, req.node)
    return _reply(rt, run, slot)


async def param_set(rt: Runtime, req: rq.ParamSet) -> rp.ParamsReply:
    run, slot = live_slot(rt, req.run, req.node)
    key = model.check_key(req.key)
    text = None if req.value is None else model.value_text(req.value, key)
    now = params.current(rt.store, run.id, slot)
    if text is None and key not in now:
        raise UnknownParam(slot.id, key)
    if text is not None and key not in now and len(now) >= model.MAX_PARAMS:
        raise BadRequest(f"node {slot.id!r} has {model.MAX_PARAMS} parameters (the most)")
    timeout = model.ACK_TIMEOUT_S if req.timeout is None else min(req.timeout, MAX_ACK_S)
    assert rt.params is not None  # made with the node channel (daemon/run/assembly.py)
    await rt.params.deliver(run, slot, key, text, timeout)
    return _reply(rt, run, slot)


PARAM_HANDLERS = {rq.ParamList: param_list, rq.ParamSet: param_set}
