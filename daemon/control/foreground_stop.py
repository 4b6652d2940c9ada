"""`flow stop` of a run a `flow run` supervises in its own process: asked of that process.

The daemon lists such a run (they share `state.db`) but does not supervise it; the `flow
run` process does, and stops it on SIGTERM as on Ctrl-C, with its own grace (a second
signal: at once, as `--force` asks). The daemon signals it and waits, bounded, for the
run's end to be written.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import trio

from daemon.run.runtime import Runtime

log = logging.getLogger(__name__)

FOREGROUND_STOP_S = 60.0  # its own grace (10 s by default), SIGKILL, its result written
POLL_S = 0.2  # the end is a row another process writes: looked for, not awaited
SECOND_SIGNAL_S = 0.3  # after the first was taken: the second means "no grace"


async def stop_foreground(
    rt: Runtime, info: dict[str, Any], pid: int, force: bool
) -> dict[str, Any]:
    """Have the `flow run` process `pid` stop its run; the run as it ended (or as it is,
    past FOREGROUND_STOP_S)."""
    # a second, other signal for --force: a pending one of the same number would be taken
    # as the first again (trio keeps one of each)
    signals = (signal.SIGTERM, signal.SIGINT) if force else (signal.SIGTERM,)
    for sent, number in enumerate(signals):
        if sent:
            await trio.sleep(SECOND_SIGNAL_S)
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            break  # it ended meanwhile: its end is written, or settled at the next start
    log.info("run %s: asked its flow run process (pid %d) to stop it", info["id"], pid)
    with trio.move_on_after(FOREGROUND_STOP_S):
        while rt.wait_info(info["id"])["status"] in ("starting", "running"):  # noqa: ASYNC110
            await trio.sleep(POLL_S)
    return rt.wait_info(info["id"])
