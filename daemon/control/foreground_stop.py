"""`flow stop` of a run a `flow run` supervises in its own process: asked of that process.

The daemon lists such a run (they share `state.db`) but does not supervise it; the `flow
run` process does, and stops it on SIGTERM as on Ctrl-C, with its own grace (a second
signal: at once, as `--force` asks). The daemon signals it and waits, bounded, for the
run's end to be written.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import trio

from daemon.model.pids import (
    FOREGROUND_POLL_S,
    FOREGROUND_STOP_S,
    SECOND_SIGNAL_S,
    foreground_stop_signals,
)
from daemon.run.runtime import Runtime

log = logging.getLogger(__name__)



async def stop_foreground(
    rt: Runtime, info: dict[str, Any], pid: int, force: bool
) -> dict[str, Any]:
    """Have the `flow run` process `pid` stop its run; the run as it ended (or as it is,
    past FOREGROUND_STOP_S)."""
    for sent, number in enumerate(foreground_stop_signals(force)):
        if sent:
            await trio.sleep(SECOND_SIGNAL_S)
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            break  # it ended meanwhile: its end is written, or settled at the next start
    log.info("run %s: asked its flow run process (pid %d) to stop it", info["id"], pid)
    with trio.move_on_after(FOREGROUND_STOP_S):
        while rt.wait_info(info["id"])["status"] in ("starting", "running"):  # noqa: ASYNC110
            await trio.sleep(FOREGROUND_POLL_S)
    return rt.wait_info(info["id"])
