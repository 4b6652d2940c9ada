"""Watching the state store's file: a deleted or replaced state.db is made again, live runs in it.

SQLite writes on through a deleted file without a word, so the runs would vanish at the
next start. Once a second the daemon checks that the path still names the file it has
open; when not, it opens a new store there and records every live run again from memory
(the history of ended runs went with the old file). The nodes are never touched; the
cause shows in `flow status` as `degraded: state store: ...`.
"""

from __future__ import annotations

import logging
import sqlite3

import trio

from daemon.model.errors import StateWriteFailed
from daemon.run import store_reserve
from daemon.run.runtime import Runtime
from daemon.run.supervisor import Run
from daemon.store import Store

log = logging.getLogger(__name__)

CHECK_S = 1.0
MARK = "state store: "


async def watch_store(rt: Runtime) -> None:
    """Check the store's file every CHECK_S; recreate it when it is gone; write what it
    could not take before (a full disk) once it takes writes again, freeing the store's
    reserve for them if need be, and make the reserve again once there is room."""
    while True:
        await trio.sleep(CHECK_S)
        cause = rt.store.lost()
        if cause is not None:
            _recreate(rt, cause)
        if not catch_up(rt):
            store_reserve.keep(rt.home)


def catch_up(rt: Runtime) -> int:
    """Every run's held writes, tried (daemon/run/unsaved.py); when some are refused, the
    store's reserve is freed and they are tried once more -> how many runs still hold some."""
    held = _catch_up_once(rt)
    if held and store_reserve.release(rt.home):
        log.warning("state store: writes of %d run(s) refused (a full disk?): its reserve "
                    "freed for them", held)  # fmt: skip
        held = _catch_up_once(rt)
    return held


def _catch_up_once(rt: Runtime) -> int:
    held = 0
    for run in [*rt.runs.values(), *rt.unsaved.values()]:
        if run.unsaved and run.unsaved.catch_up(rt.store, run.id):
            rt.unsaved.pop(run.id, None)
        held += bool(run.unsaved)
    return held


def _recreate(rt: Runtime, cause: str) -> None:
    try:
        rt.store.reopen()
        for run in list(rt.runs.values()):
            record_again(rt.store, run, rt.origin)
    except (StateWriteFailed, OSError, sqlite3.Error) as exc:  # auxiliary: never fatal
        _note(rt, f"{cause}; {exc}; retrying every {CHECK_S:g}s")
        return
    _note(rt, f"{cause}: recreated with the {len(rt.runs)} live runs (ended runs' history lost)")


def _note(rt: Runtime, what: str) -> None:
    line = f"{MARK}{what}"
    if line not in rt.degraded:
        log.error("%s", line)
        rt.degraded[:] = [*(d for d in rt.degraded if not d.startswith(MARK)), line]


def record_again(store: Store, run: Run, origin: str) -> None:
    """Write a live run, its nodes and their counters into a new store, from memory."""
    try:  # recovery's second copy of the dataflow, as the run's start stored it
        text: str | None = run.descriptor_copy.read_text()
    except (OSError, UnicodeDecodeError):
        text = None
    store.create_run(
        run.id,
        run.name,
        str(run.dataflow.path),
        [(node_id, str(slot.status)) for node_id, slot in run.slots.items()],
        origin,
        run.extra_env,
        text,
        machines=run.placed.placement.machine_of if run.placed is not None else None,
        processes={node_id for node_id, slot in run.slots.items() if not slot.spec.connects},
        record=run.record,
    )
    store.update_run(run.id, status=str(run.status), error=run.error, degraded=run.degraded)
    for edit in run.edits:
        store.add_edit(run.id, edit)
    for node_id, slot in run.slots.items():
        store.update_node(
            run.id, node_id, generation=slot.generation, pid=slot.pid, restarts=slot.restarts
        )
