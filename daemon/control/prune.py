"""The `prune` request: delete ended runs' records and folders, through the store's owner."""

from __future__ import annotations

import functools
import logging
import math
import time

import trio

from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest
from daemon.run.runtime import Runtime
from daemon.store import remove_run_folders

log = logging.getLogger(__name__)


async def prune(rt: Runtime, req: rq.Prune) -> rp.RunsReply:
    if not math.isfinite(req.older_than) or req.older_than < 0:
        raise BadRequest(f"older_than {req.older_than!r}: expected a non-negative number")
    # a run still in memory is still supervised (or settling): never pruned
    gone = rt.store.prune(time.time() - req.older_than, set(rt.runs), dry_run=req.dry_run)
    if not req.dry_run:
        remove = functools.partial(remove_run_folders, rt.home, [info["id"] for info in gone])
        for problem in await trio.to_thread.run_sync(remove):
            log.warning("prune: %s", problem)
    return rp.RunsReply(runs=gone)


PRUNE_HANDLERS = {rq.Prune: prune}
