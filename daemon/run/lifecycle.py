"""A run from its keeper's start to its result: the start barrier, the keeper watch, cleanup."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import threading

import trio

from daemon.keeper.ledger import EXIT_LEDGER
from daemon.keeper.shm_cleanup import remove_run_segments
from daemon.model.errors import KeeperLost, first_leaf
from daemon.model.keeper_messages import State
from daemon.model.settings import current as settings
from daemon.model.states import NodeStatus, RunStatus
from daemon.run import health, recording, slot_restore
from daemon.run.connect_wait import late_message, wait_connected
from daemon.run.keeper_link import (
    Alive,
    KeeperLink,
    KeeperPort,
    start_keeper_process,
    start_keeper_thread,
)
from daemon.run.receiver_word import tell_at_start
from daemon.run.stale_processes import kill_run_processes
from daemon.run.supervisor import KEEPER_EXIT_S, Run

log = logging.getLogger(__name__)

KeeperHandle = trio.Process | threading.Thread


async def supervise(
    run: Run,
    *,
    adopt: State | None = None,
    keeper: KeeperPort | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own a run from its keeper's start to its result; cancelled, it stops every node first.

    Started (for `nursery.start`) once every node has been spawned or has failed to. With
    `adopt` (a living keeper's state after a daemon restart) the keeper and its nodes are
    taken over as they are: nothing is spawned again. `keeper` replaces the real keeper
    (tests hand in a fake); without it one is started, unless adopted.
    """
    # an adopted run's keeper lives on from before the daemon restart: nothing to start
    handle: KeeperHandle | None = None
    try:  # from the first step: however the start fails, `done` is set and nothing is left
        _prepare_folders(run)
        if keeper is None:
            if adopt is None and run.in_process:
                handle = start_keeper_thread(
                    run.context, run.keeper_endpoint, settings().daemon_grace, run.tee
                )
            elif adopt is None:
                handle = await start_keeper_process(
                    run.keeper_endpoint,
                    settings().daemon_grace,
                    run.run_dir / "keeper.log",
                    run.run_dir / EXIT_LEDGER,
                )
            link = KeeperLink.connect(run.context, run.keeper_endpoint, run.on_keeper_event)
            link.alive = _handle_alive(handle)  # None when adopted: its State tells its pid
            keeper = link
            if run.placed is not None:  # and the keepers of the run's other machines
                keeper = run.placed.keeper(keeper, run.on_keeper_event)
        run.keeper = keeper
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_keeper, run, keeper, handle)
            nursery.start_soon(health.watch, run)
            state = (await keeper.attach()).nodes
            if run.record is not None:  # wired before anything runs: from the first message
                started = await recording.start_recording(
                    run, run.record, recording.recordable_topics(run, None)
                )
                nursery.start_soon(recording.watch, run, started)
            for slot in run.spawned:
                # a node that had ended before the daemon went away stays ended
                adopted = adopt is not None and slot.id in state and not slot.status.finished
                if adopted:
                    slot_restore.adopt(slot, state[slot.id])
                    if slot.spec.connects and state[slot.id].alive:
                        run.unheard.add(slot.id)  # until its DEALER finds this daemon
                nursery.start_soon(functools.partial(slot.serve, adopted=adopted))
                nursery.start_soon(run.watch_slot, slot)
            for slot in run.spawned:
                await slot.first_spawn.wait()
            task_status.started()
            run.nursery = nursery  # graph edits start new nodes in it
            if not run.released:  # a re-adopted placed run passed it before the restart
                await start_barrier(run)
            # nodes added while it runs count too
            while pending := [s for s in run.spawned if not s.finished.is_set()]:
                await pending[0].finished.wait()
            await recording.stop_all(run)  # before the result: its tally is part of it
            for node_id in run.late:
                run.slots[node_id].transition(NodeStatus.FAILED)
            run.set_status(run.result_status(), error=run.error)
            nursery.cancel_scope.cancel()  # the keeper watch, any close backstops
    finally:
        # the keeper stops whatever is left and exits; its nodes never outlive it
        if keeper is not None:
            keeper.quit()
        with trio.CancelScope(shield=True):  # however the run ended, no recorder is left
            await recording.stop_all(run)
        if handle is not None:
            with trio.CancelScope(shield=True):
                await _wait_keeper(handle)
        shutil.rmtree(run.sockets, ignore_errors=True)
        remove_run_segments(run.id)  # however the run ended, no segment of it stays
        run.done.set()


async def _watch_keeper(run: Run, keeper: KeeperPort, handle: KeeperHandle | None) -> None:
    """Serve the keeper link; a keeper that exits or falls silent fails its run, only it."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keeper.serve)
            if isinstance(handle, trio.Process):
                nursery.start_soon(_keeper_exit, handle)
    except* KeeperLost as group:
        lose_keeper(run, str(first_leaf(group)))


def lose_keeper(run: Run, cause: str) -> None:
    """The keeper is gone: kill what it left, end every slot, and fail the run.

    Its nodes are its children, so no exit will ever be reported: their process groups
    (each node leads its own) are killed by the pids recorded for them.
    """
    if run.keeper_lost is not None:
        return
    run.keeper_lost = run.error = cause
    run.stop_requested = True  # no restart: nothing could spawn it
    log.error("run %s: %s: stopping its nodes", run.id, cause)
    for slot in run.spawned:
        if slot.pid is not None and not slot.exited.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(slot.pid, signal.SIGKILL)
        slot.lose_process(cause)
    # what its nodes moved out of their groups (setsid, a double fork) would have been
    # ended by the keeper, which is gone (or hung: it goes too). A psutil scan of every
    # process's environment, in the loop: once per lost keeper, milliseconds, and a
    # worker thread would let the run's end wait on it
    left = kill_run_processes(run.id, str(run.sockets), str(run.home))
    if left:
        log.warning("run %s: killed %d processes its lost keeper left", run.id, left)


def _handle_alive(handle: KeeperHandle | None) -> Alive | None:
    """Whether the keeper this daemon started still lives (None: it did not start one)."""
    if isinstance(handle, threading.Thread):
        return handle.is_alive
    if isinstance(handle, trio.Process):
        return lambda: handle.returncode is None
    return None


async def _keeper_exit(process: trio.Process) -> None:
    """A keeper process that exits before its run has ended is lost (noticed at once)."""
    code = await process.wait()
    raise KeeperLost(f"run keeper lost: process {process.pid} exited with {code}")


async def _wait_keeper(keeper: KeeperHandle) -> None:
    if isinstance(keeper, threading.Thread):  # a thread cannot be cancelled: its own bound
        await trio.to_thread.run_sync(functools.partial(keeper.join, KEEPER_EXIT_S))
        return
    with trio.move_on_after(KEEPER_EXIT_S):
        await keeper.wait()
    if keeper.returncode is None:
        log.error("run keeper %d did not exit: killing it", keeper.pid)
        keeper.kill()
        with trio.move_on_after(KEEPER_EXIT_S):  # collected, not left a zombie
            await keeper.wait()


def _prepare_folders(run: Run) -> None:
    run.sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        run.log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        run.mark_degraded(f"logs: {exc.strerror or exc}")


async def start_barrier(run: Run) -> None:
    """Release every node at once when all have connected (or exited) (SPEC 5).

    A process node (`connects: false`) is not waited for: it never connects. Its stdout
    lines, which flow sends for it, are held by the keeper until it is released here.
    A node that could not even be spawned (after the retries of a keeper out of fds or
    processes) fails the whole start: the others are stopped, nothing is left half run.
    """
    unspawned = [s for s in run.spawned if s.spawn_error is not None]
    if unspawned:
        run.late = [s.id for s in unspawned]
        causes = "; ".join(f"node {s.id} could not start: {s.spawn_error}" for s in unspawned)
        run.error = f"{causes} (the start was stopped)"
        log.warning("run %s: %s", run.id, run.error)
        run.record_run(error=run.error)
        await run.stop(grace=1.0)
        return
    # process nodes (`connects: false`) never say hello: the barrier does not wait for them
    awaited = [s for s in run.spawned if s.spec.connects]
    late = await wait_connected(awaited, timeout := settings().start_timeout)
    if late:
        run.late = [s.id for s in late]
        run.error = late_message(late, timeout)
        log.warning("run %s: %s", run.id, run.error)
        run.record_run(error=run.error)
        await run.stop(grace=1.0)
        return
    run.released = True
    for slot in run.spawned:
        run.release(slot)
    tell_at_start(run)  # of receivers already between generations (flush.py)
    if run.status is RunStatus.STARTING:
        run.set_status(RunStatus.RUNNING)
    for slot in run.spawned:
        if slot.finished.is_set():
            run.node_finished(slot)
