"""dora's health check: a node whose own thread stays away too long is killed.

A node with `health_check_timeout` is unresponsive once its own thread has been neither in
`next()` (or `recv_async`) nor sending for longer than that: it reports how long in each
one-second `stats` (`away_ms`, node_sdk/receiver.py), and this watch looks at the reports
every `health_check_interval` (dora's default 5 s). As dora, only a node that has
connected is watched (a slow start is not a hang), and the kill is SIGKILL: the node's
restart policy decides what follows (`on-failure` restarts it).
"""

from __future__ import annotations

import logging
import signal
import time

import trio

from daemon.run.supervisor import Run

log = logging.getLogger(__name__)


async def watch(run: Run) -> None:
    """Every interval, kill each connected node that has been away past its timeout (a
    node `flow node add` brings may have one: the watch runs for every run)."""
    killed: dict[str, int] = {}  # node -> the generation killed (once per generation)
    while True:
        await trio.sleep(run.dataflow.health_check_interval)
        now = time.monotonic()
        for slot in list(run.slots.values()):
            timeout = slot.spec.health_check_timeout
            if timeout is None or killed.get(slot.id) == slot.generation:
                continue
            if not slot.connected.is_set() or slot.exited.is_set() or slot.pid is None:
                continue
            away = now - slot.active_at
            if away <= timeout:
                continue
            killed[slot.id] = slot.generation
            why = f"unresponsive for {away:.1f}s (health_check_timeout {timeout:g}s): killed"
            log.warning("run %s: node %s %s", run.id, slot.id, why)
            slot.kill_cause = why
            run.record_event(slot.id, "health", why)
            run.signal_node(slot, signal.SIGKILL)
