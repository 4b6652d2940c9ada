"""A dead `flow run` whose pid another process now holds is settled as failed at daemon start
(issue 10 defect 8): a foreground run's origin names its process by pid and create time."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from helpers import daemon_down, daemon_up, flow

from daemon.model import pids
from daemon.store import Store
from node_sdk import paths


def _record(store: Store, run_id: str, origin: str) -> None:
    store.create_run(run_id, run_id, "/x/dataflow.yml", [("a", "running")], origin, {})
    store.update_run(run_id, status="running")


def test_recovery_tells_a_reused_pid_from_the_flow_run_that_had_it(flow_home: Path) -> None:
    me = os.getpid()
    started = pids.create_time(me)
    assert started is not None
    store = Store.open(paths.state_db(flow_home))
    try:
        _record(store, "reused", f"foreground:{me}:{started + 3.0!r}")
        _record(store, "alive", f"foreground:{pids.tag()}")
        _record(store, "legacy-alive", f"foreground:{me}")
        _record(store, "legacy-reused", "foreground:0")  # replaced below
        # a process started after the record cannot be the one it names; psutil's create
        # times run up to a second early, so "after" must be more than a second
        time.sleep(1.1)
        later = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
        with store.db:  # the store has no API to rewrite an origin: nothing else should
            store.db.execute(
                "UPDATE runs SET origin = ? WHERE id = 'legacy-reused'",
                (f"foreground:{later.pid}",),
            )
    finally:
        store.close()
    try:
        daemon_up(flow_home)
        try:
            done = flow("list", "--all", "--json", home=flow_home)
            runs = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
        finally:
            daemon_down(flow_home)
    finally:
        later.kill()
        later.wait()
    assert runs["reused"]["status"] == "failed"
    assert runs["reused"]["error"] == "the flow run process exited"
    assert runs["legacy-reused"]["status"] == "failed"
    assert runs["alive"]["status"] == "running"
    assert runs["legacy-alive"]["status"] == "running"
