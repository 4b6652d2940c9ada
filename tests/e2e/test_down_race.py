"""A `flow down` under way starts nothing new: a start is refused in one line, and a
`flow up` waits for the old daemon to end, then starts the next one (no run outlives the
shutdown to come back at the next start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import BOUND_S, NODES, flow, flow_env, stream_graph, wait_for

from cli import client

STUBBORN = f"""
nodes:
  - id: stubborn
    path: {NODES}/stubborn.py
"""


def test_a_start_during_flow_down_is_refused_and_flow_up_waits_for_the_end(
    daemon: Path, tmp_path: Path
) -> None:
    (tmp_path / "stubborn.yml").write_text(STUBBORN)
    (tmp_path / "late.yml").write_text(stream_graph(tick_ms=50))
    started = flow("start", str(tmp_path / "stubborn.yml"), "--detach", "--name", "held",
                   home=daemon)  # fmt: skip
    assert started.returncode == 0, started.stderr
    old = client.ping(timeout=2.0, home=daemon)
    assert old is not None
    # stubborn holds the shutdown for its grace: long enough for the three commands below
    # to find it still under way on a loaded machine (2 s was not, in CI)
    down = subprocess.Popen(
        [sys.executable, "-m", "cli", "down", "--grace", "6s"], env=flow_env(daemon),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: getattr(client.ping(timeout=1.0, home=daemon), "stopping", False),
                 "the daemon never said it was shutting down")  # fmt: skip
        late = flow("start", str(tmp_path / "late.yml"), "--detach", "--name", "late",
                    home=daemon)  # fmt: skip
        assert late.returncode == 1, late.stdout + late.stderr
        assert late.stderr.strip().splitlines() == [
            "error: the flow daemon is shutting down: nothing new starts now; run `flow up` "
            "once it has stopped"
        ]
        restarted = flow("restart", "held", home=daemon)  # refused before any grace is waited
        assert restarted.returncode == 1, restarted.stdout + restarted.stderr
        assert "error: the flow daemon is shutting down" in restarted.stderr, restarted.stderr
        up = flow("up", home=daemon)
        assert up.returncode == 0, up.stderr
        assert f"the flow daemon (pid {old.pid}) is shutting down: waiting" in up.stdout
        assert "flow daemon started" in up.stdout, up.stdout
        out, err = down.communicate(timeout=BOUND_S)
        assert down.returncode == 0, out + err
    finally:
        if down.poll() is None:
            down.kill()
            down.wait()
    new = client.ping(timeout=2.0, home=daemon)
    assert new is not None
    assert (new.pid != old.pid, new.stopping) == (True, False)
    listed = [json.loads(line) for line in flow("list", "--all", "--json", home=daemon)
              .stdout.splitlines()]  # fmt: skip
    assert [(r["name"], r["recovered"]) for r in listed] == [("held", False)], listed
    assert listed[0]["status"] != "running"
