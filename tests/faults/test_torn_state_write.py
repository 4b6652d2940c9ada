"""State writes killed half-way (fault matrix row 15): each reopen finds the old or the new
state, never a torn one (SQLite transactions in WAL mode)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon.store import Store
from node_sdk import paths

WRITER = """
import sys
from pathlib import Path
from daemon.store import Store

store = Store.open(Path(sys.argv[1]))
run = "torn"
if store.run(run) is None:
    store.create_run(run, run, "/x.yml", [("a", "running"), ("b", "running")], "daemon", {})
n = int(store.run(run)["error"] or 0)
while True:  # one transaction each: the node's count first, then the run's
    n += 1
    store.update_node(run, "a", restarts=n)
    store.update_run(run, error=str(n))
    print(n, flush=True)
"""


def test_row15_sigkill_during_rapid_state_writes_tears_nothing(flow_home: Path) -> None:
    db = paths.state_db(flow_home)
    rng = random.Random(15)
    last_seen = 0
    for _ in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        assert writer.stdout.readline()  # writing
        time.sleep(rng.uniform(0.05, 0.3))
        writer.send_signal(signal.SIGKILL)
        printed = [int(line) for line in writer.stdout.read().split()]
        writer.stdout.close()
        writer.wait()
        store = Store.open(db)  # a torn file would be refused here (quick_check)
        try:
            info = store.run("torn")
        finally:
            store.close()
        assert info is not None
        value = int(info["error"])
        restarts = next(n["restarts"] for n in info["nodes"] if n["id"] == "a")
        assert restarts in (value, value + 1)  # each write whole: at most one ahead
        assert value >= last_seen  # nothing committed was lost
        if printed:
            assert printed[-1] <= value <= printed[-1] + 1  # what it said it wrote is there
        last_seen = value
    assert last_seen > 100  # many writes, cut short eight times: none tore the store
