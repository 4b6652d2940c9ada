"""Ending run keepers that no daemon supervises: `python -m daemon end-orphans`.

A daemon killed (SIGKILL, crash) leaves each run's keeper serving its nodes for
`daemon_grace`, so that a daemon back in time re-adopts them (SPEC 7.4). `flow down` with
no daemon alive asks for them to end now instead: this runs as its own short process
(the CLI reaches daemon code only through the control protocol or a `python -m` entry),
tells every keeper of the home to stop its nodes and exit, removes the dead daemon's
socket files, and records the runs they served `stopped`: a stop by request is final, so
the next daemon does not bring them back (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import zmq

from daemon.home_lock import HomeLocked, lock_home
from daemon.keeper.ledger import EXIT_LEDGER, read_exits
from daemon.model.errors import FlowError
from daemon.model.keeper_messages import Quit, encode
from daemon.model.states import NodeStatus
from daemon.run import ipc_files
from daemon.run.recovery import MISSING, ended_status
from daemon.store import Store
from node_sdk import paths, private

log = logging.getLogger(__name__)

QUIT_LINGER_MS = 500  # long enough for `quit` to reach a keeper that is alive


def end_orphaned_keepers(home: Path) -> int:
    """Tell every run keeper still serving `home` to end; how many were told."""
    folder = paths.socket_dir(home)
    try:
        private.check_private_dir(folder)
    except private.NotPrivate:
        return 0  # another user's folder: nothing in it is ours to tell or remove
    for name in (paths.CONTROL_SOCKET, paths.NODES_SOCKET):
        if ipc_files.is_stale(folder / name):  # a live one is someone's, even now
            with contextlib.suppress(OSError):
                (folder / name).unlink()
    keepers = sorted(folder.glob("*/keeper")) if folder.is_dir() else []
    record_stopped(home)
    if not keepers:
        return 0
    context = zmq.Context()
    try:
        for keeper in keepers:
            socket = context.socket(zmq.DEALER)
            socket.connect(f"ipc://{keeper}")
            socket.send(encode(Quit()), zmq.NOBLOCK)
            socket.close(linger=QUIT_LINGER_MS)
    finally:
        context.term()
    return len(keepers)


def record_stopped(home: Path) -> list[str]:
    """Record every run a dead daemon left active `stopped` (a node its keeper saw end by
    itself as it ended); the ids. Nothing when a daemon is starting (it holds the home's
    lock and recovers them) or the store cannot be opened or written: the keepers still
    end, and the next daemon restarts what it finds running, as after any crash."""
    if not paths.state_db(home).exists():
        return []
    try:
        fd = lock_home(home)
    except (OSError, HomeLocked):
        return []
    try:
        store = Store.open(paths.state_db(home))
        try:
            return [_stop_run(home, store, info) for info in store.runs(include_ended=False)
                    if info["origin"] == "daemon"]  # fmt: skip  (`flow run`s are their own)
        finally:
            store.close()
    except FlowError as exc:
        log.warning("could not record the orphaned runs stopped: %s", exc)
        return []
    finally:
        os.close(fd)


def _stop_run(home: Path, store: Store, info: dict[str, Any]) -> str:
    run_id = str(info["id"])
    exits = read_exits(paths.run_dir(home, run_id) / EXIT_LEDGER)
    for node in info["nodes"]:
        code = exits.get((node["id"], int(node["generation"])), MISSING)
        ended = ended_status(str(node["status"]), code)
        if ended is None:
            store.update_node(run_id, node["id"], status=str(NodeStatus.STOPPED))
        elif code is not MISSING and str(ended) != node["status"]:
            store.update_node(run_id, node["id"], status=str(ended), exit_code=code)
    store.update_run(run_id, status="stopped", ended=time.time())
    log.info("run %s: recorded stopped (its daemon was gone)", run_id)
    return run_id
