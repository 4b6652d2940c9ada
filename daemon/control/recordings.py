"""`flow record RUN -o PATH`: a recording of a live run, held by its command's lease.

The recorder is the one `--record` starts (daemon/run/recording.py), wired to a running
run's outputs from now on. The command renews the recording every second and stops it at
its end (Ctrl-C); a recording nobody renews is stopped after `LEASE_S`, so a killed command
leaves no recorder behind. A run that ends stops its recordings itself; their summaries
stay with the run, for the command's next renewal to read.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BadRequest
from daemon.model.states import NodeStatus
from daemon.run import recording as rec

if TYPE_CHECKING:
    from daemon.run.runtime import Runtime
    from daemon.run.supervisor import Run

MAX_RECORDINGS = 16  # live recordings of one run
MAX_KEPT = 64  # ended recordings whose summary nobody has read yet


async def record_start(rt: Runtime, req: rq.RecordStart) -> rp.RecordReply:
    run = rt.live_run(req.run)
    if not os.path.isabs(req.path):
        raise BadRequest(f"path {req.path!r} must be absolute")
    if sum(r.summary is None for r in run.recordings) >= MAX_RECORDINGS:
        raise BadRequest(f"run {run.name or run.id} has {MAX_RECORDINGS} recordings already")
    topics = rec.recordable_topics(run, list(req.topics))
    if not topics:
        raise BadRequest(f"run {run.name or run.id} has no output flow can record")
    if run.nursery is None or not run.status.active:
        raise BadRequest(f"run {run.name or run.id} is not running")
    # a node whose machine is not connected cannot be wired to the recorder now (its wire
    # is lost, not held): refused, as `flow topic` refuses it, rather than recording nothing
    lost = [t for t in topics if run.slots[t.partition("/")[0]].status is NodeStatus.LOST]
    if lost:
        raise BadRequest(f"cannot record {', '.join(lost)} now: its machine is not connected "
                         "(flow cluster status); --topics may leave it out")  # fmt: skip
    recording = await rec.start_recording(run, req.path, topics, refuse=True)
    recording.expires = time.monotonic() + rec.LEASE_S
    _forget_ended(rt)
    rt.recordings[recording.id] = (run, recording)
    run.nursery.start_soon(rec.expire, run, recording)
    run.nursery.start_soon(rec.watch, run, recording)
    return _reply(recording)


async def record_renew(rt: Runtime, req: rq.RecordRenew) -> rp.RecordReply:
    _, recording = _find(rt, req.recording)
    if recording.expires is not None:
        recording.expires = time.monotonic() + rec.LEASE_S
    return _reply(recording)


async def record_stop(rt: Runtime, req: rq.RecordStop) -> rp.RecordReply:
    run, recording = _find(rt, req.recording)
    await rec.stop_recording(run, recording)
    rt.recordings.pop(recording.id, None)  # its command has the summary now
    return _reply(recording)


def _find(rt: Runtime, recording_id: str) -> tuple[Run, rec.Recording]:
    found = rt.recordings.get(recording_id)
    if found is None:
        raise BadRequest(f"no recording {recording_id!r} (it ended long ago?)")
    run, recording = found
    return run, recording


def _forget_ended(rt: Runtime) -> None:
    """Keep at most MAX_KEPT ended recordings whose command never came for the summary."""
    ended = [key for key, (_, r) in rt.recordings.items() if r.summary is not None]
    for key in ended[: max(0, len(ended) - MAX_KEPT)]:
        del rt.recordings[key]


def _reply(recording: rec.Recording) -> rp.RecordReply:
    return rp.RecordReply(recording=recording.id, topics=list(recording.topics),
                          lease_s=rec.LEASE_S, summary=recording.summary)  # fmt: skip


RECORD_HANDLERS = {
    rq.RecordStart: record_start,
    rq.RecordRenew: record_renew,
    rq.RecordStop: record_stop,
}
