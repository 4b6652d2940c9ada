"""Issue 11.12: after `kill -9` of the daemon, the CLI says it is unreachable at once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import flow
from procs import daemon_pid, wait_gone

# Before the fix these took 10.5 s (status), 25 s (stop) and over 10 s (list): each waited
# for its whole reply timeout on a socket file the dead daemon left. The bound is generous
# for a loaded CI machine and still far below any of those timeouts.
PROMPT_S = 3.0


@pytest.mark.parametrize(
    "command",
    [("status",), ("list",), ("stop", "some-run"), ("node", "list", "some-run")],
    ids=" ".join,
)
def test_a_killed_daemon_is_reported_unreachable_at_once(
    daemon: Path, command: tuple[str, ...]
) -> None:
    pid = daemon_pid(daemon)
    os.kill(pid, signal.SIGKILL)
    assert wait_gone([pid], timeout=10) == []
    started = time.monotonic()
    done = flow(*command, home=daemon)
    took = time.monotonic() - started
    if command == ("list",):  # with no daemon, the runs as the store last recorded them
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr.startswith("the flow daemon is not running"), done.stderr
    else:
        assert done.returncode == 3, done.stdout + done.stderr
        # the message says what to do (`flow status` says it on stdout: not running is an
        # answer)
        assert "flow up" in done.stdout + done.stderr
    assert took < PROMPT_S, f"flow {' '.join(command)} took {took:.1f}s to say so"
