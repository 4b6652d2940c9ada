"""A request waiting for its reply while the daemon dies: said before the request's timeout,
whether the dead daemon was reaped already or is a zombie still, or its pid is another's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import FakeControlDaemon

from cli import client
from cli.errors import DaemonUnreachable
from daemon.model.requests_runs import Ping
from node_sdk import paths

TIMEOUT_S = 30.0  # the request's: what a liveness check that failed would wait out


@pytest.mark.parametrize("how", ["reaped", "zombie", "pid taken"])
def test_a_daemon_that_dies_while_a_request_waits_is_said_before_the_timeout(
    fake_control: FakeControlDaemon, flow_home: Path, how: str
) -> None:
    """A stand-in process is the daemon the pid file names; it dies once the request is on
    its way: reaped (its pid gone: the signal-0 check), not reaped (a zombie: psutil's,
    after PSUTIL_CHECK_AFTER_S), or its pid file names another process (this test's)."""
    fake_control.on("ping", None)  # it never answers
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid_file = paths.daemon_pid_file(flow_home)
    pid_file.write_text(f"{stand_in.pid}\n")

    def die() -> None:
        if how == "pid taken":
            pid_file.write_text(f"{os.getpid()}\n")
            return
        stand_in.kill()
        if how == "reaped":
            stand_in.wait()

    started = time.monotonic()
    try:
        with pytest.raises(DaemonUnreachable):
            client.call(Ping(), timeout=TIMEOUT_S, sent=die)
        waited = time.monotonic() - started
    finally:
        stand_in.kill()
        stand_in.wait()
    assert waited < TIMEOUT_S / 3, waited  # a safety bound far from the timeout, not a speed test
