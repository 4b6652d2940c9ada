"""`flow logs -f` outlives a daemon crash: it follows the log files while the run's keeper
serves the nodes, through the daemon again once one is back, and ends in one line when the
nodes end with no daemon (it ended with `cannot reach the flow daemon` at the crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BOUND_S, daemon_down, flow, flow_env, stream_graph, wait_for
from procs import daemon_pid, wait_gone


@pytest.mark.parametrize("grace", ["60s", "2s"], ids=["back", "never-back"])
def test_logs_follow_outlives_a_daemon_crash(flow_home: Path, tmp_path: Path, grace: str) -> None:
    env = {"FLOW_DAEMON_GRACE": grace}
    out = tmp_path / "follow.out"
    following: subprocess.Popen[bytes] | None = None
    try:
        assert flow("up", home=flow_home, env_extra=env).returncode == 0
        yml = tmp_path / "fl.yml"
        yml.write_text(stream_graph(tick_ms=100))
        assert flow("start", str(yml), "--detach", "--name", "fl", home=flow_home).returncode == 0
        with out.open("w") as sink:
            following = subprocess.Popen(
                [sys.executable, "-m", "cli", "logs", "fl", "sink", "-f"],
                env=flow_env(flow_home), stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(lambda: "got data" in out.read_text(), "nothing followed")
        killed = daemon_pid(flow_home)
        os.kill(killed, signal.SIGKILL)
        assert not wait_gone([killed], 10)
        wait_for(lambda: "the flow daemon went away" in out.read_text(), "no word of it")
        lines = out.read_text().count("got data")
        wait_for(lambda: out.read_text().count("got data") > lines + 3, "the files stopped")
        if grace == "60s":
            assert flow("up", home=flow_home, env_extra=env).returncode == 0
            wait_for(lambda: "the flow daemon is back" in out.read_text(), "never back")
            assert flow("stop", "fl", home=flow_home).returncode == 0
            assert following.wait(timeout=BOUND_S) == 0
            assert "run fl" in out.read_text()
        else:  # the keeper ends the nodes at the end of its grace
            assert following.wait(timeout=BOUND_S) == 3
            assert "the run's nodes have ended: `flow up` records how" in out.read_text()
        assert "Traceback" not in out.read_text()
    finally:
        if following is not None:
            following.kill()
            following.wait()
        daemon_down(flow_home)
