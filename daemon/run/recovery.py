"""Recovery at daemon start (SPEC 7.4): adopt what lived through, restart what did not.

Runs a daemon left `running`/`starting` (it crashed) or `interrupted` (it was terminated by
a signal) come back unless their file says `recover: false`. A run whose keeper still
answers is adopted as it is: no restart, no lost or repeated message. Otherwise its stale
processes are killed first and every node is started once more, generation + 1.
Runs stopped by `flow stop` or `flow down` are `stopped` and never come back, and in a
run that comes back only the nodes that had not ended do (`NodeStatus.comes_back`).
A coordinator re-adopts a run it had placed on several machines when its keeper here still
answers: its members' nodes as the store last saw them, until each member reports
(docs/cluster.md, "Loss and return"); without that keeper the run fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import trio

from daemon.files import write_atomic
from daemon.keeper.ledger import EXIT_LEDGER, read_exits
from daemon.keeper.shm_cleanup import remove_run_segments
from daemon.model import keeper_messages as km
from daemon.model import pids
from daemon.model.errors import FlowError, RecoverableError, StateWriteFailed
from daemon.model.states import NodeStatus, RunStatus
from daemon.run import dynamic, graph_edits
from daemon.run.keeper_link import probe_keeper
from daemon.run.placement import PlacedRun, read_placement
from daemon.run.recording import recovered_path
from daemon.run.runtime import Runtime, served_machines
from daemon.run.slot import NodeSlot
from daemon.run.slot_restore import restore
from daemon.run.stale_processes import keeper_alive, kill_groups, kill_run_processes
from daemon.run.supervisor import Run
from daemon.store import Store
from node_sdk import paths

log = logging.getLogger(__name__)

FOREGROUND_CHECK_S = 5.0  # how often a serving daemon looks for `flow run`s that died
STALLED_PROBE_S = 1.0  # how often a stalled keeper is asked again after the daemon's start


async def recover_runs(rt: Runtime) -> None:
    """Bring back every interrupted run of this home; each failure stays that run's. A run
    whose keeper lives but does not answer (stalled) is recovered once it answers, while
    the daemon serves (`_recover_stalled`)."""
    stalled: list[dict[str, Any]] = []
    for info in rt.store.interrupted_runs():
        origin = str(info["origin"])
        if origin.startswith("foreground"):
            settle_foreground(rt.store, info)
            continue
        if not await _recover_or_settle(rt, info, wait_stalled=True):
            stalled.append(info)
    waiting = {str(info["id"]) for info in stalled}  # their processes and folders stay
    stale = kill_unknown_processes(rt, waiting)
    if stale:
        log.warning("killed %d stale processes that belong to no known run", stale)
    remove_unknown_socket_folders(rt, waiting)
    for info in stalled:
        rt.recovering[info["id"]] = trio.Event()
        rt.nursery.start_soon(_recover_stalled, rt, info)
    if rt.placer is not None:
        rt.placer.recovered()


async def _recover_or_settle(rt: Runtime, info: dict[str, Any], *, wait_stalled: bool) -> bool:
    """`_recover`, or the run recorded failed when it cannot be; False: its keeper is
    stalled, and `wait_stalled` leaves the run to `_recover_stalled`."""
    try:
        return await _recover(rt, info, wait_stalled=wait_stalled)
    except (FlowError, OSError) as exc:
        log.warning("run %s could not be recovered: %s", info["id"], exc)
        _settle(rt.store, info["id"], status="failed", error=f"not recovered: {exc}")
        remove_run_segments(info["id"])
        return True


async def _recover_stalled(rt: Runtime, info: dict[str, Any]) -> None:
    """A run whose keeper lived but did not answer at the daemon's start: asked again
    until it answers, its process ends, or KEEPER_HUNG_S has passed; then recovered as
    any other (adopted, or started again without the keeper, which goes with its nodes)."""
    sockets = paths.run_socket_dir(rt.socket_dir, info["id"])
    deadline = trio.current_time() + km.KEEPER_HUNG_S
    try:
        while trio.current_time() < deadline and await _keeper_alive(sockets):
            endpoint = f"ipc://{sockets / 'keeper'}"
            if await probe_keeper(rt.context, endpoint, quiet=True) is not None:
                break
            await trio.sleep(STALLED_PROBE_S)
        # as it is now: a stop asked meanwhile waited for this (`Runtime.recovered`)
        await _recover_or_settle(rt, rt.store.run(info["id"]) or info, wait_stalled=False)
    finally:
        rt.recovering.pop(info["id"]).set()


async def _keeper_alive(sockets: Path) -> bool:
    """`keeper_alive` in a worker thread: psutil reads every process's command line."""
    return await trio.to_thread.run_sync(keeper_alive, str(sockets))


def _settle(store: Store, run_id: str, **fields: Any) -> None:
    """Write how a run that is not coming back ended; a store that cannot take it (a full
    disk) leaves it for the next start to settle, and says so, rather than end the daemon."""
    try:
        store.update_run(run_id, **fields)
    except StateWriteFailed as exc:
        log.error("run %s: could not record %s: %s", run_id, fields, exc)


def settle_foreground(store: Store, info: dict[str, Any]) -> bool:
    """A `flow run` that died without recording its end is recorded as failed; whether
    it had (False: it still runs).

    Its origin names the process by pid and create time: a pid alone may be another
    process's by now, and would keep a dead run listed as running forever. What its nodes
    left running is killed. The daemon does this at its start, and so does the next
    `flow run`.
    """
    origin = str(info["origin"])
    if pids.is_tagged_alive(origin.partition(":")[2], not_after=float(info["created"])):
        return False  # still running in its own terminal
    # not what its nodes started in a session of their own (setsid, a double fork) or
    # left in theirs: nothing else would ever end those
    left = kill_groups(lambda environ, cmdline: environ.get("FLOW_DATAFLOW") == info["id"])
    if left:
        log.warning("run %s: killed %d processes its dead flow run left", info["id"], left)
    for node in info["nodes"]:  # they went with it (its keeper thread was theirs)
        if NodeStatus(node["status"]).comes_back:
            tail = [*node["stderr_tail"], "ended with its flow run process"]
            with contextlib.suppress(StateWriteFailed):
                store.update_node(info["id"], node["id"], status="failed", stderr_tail=tail)
    _settle(store, info["id"], status="failed", error="the flow run process exited")
    remove_run_segments(info["id"])
    return True


def sweep_dead_foreground_dirs() -> int:
    """Remove the socket folders of `flow run`s of this user that died (SIGKILL): how many.

    A folder is only removed when it is a real folder of ours (never a symlink or another
    user's) and no process has its pid; a reused pid keeps a dead folder, which is harmless.
    """
    removed = 0
    prefix = f"flow-{os.getuid()}-fg"
    for folder in Path("/tmp").glob(f"{prefix}*"):
        pid_text = folder.name.removeprefix(prefix).partition("-")[0]  # `fg<pid>-<random>`
        if not pid_text.isdigit() or pids.alive(int(pid_text)):
            continue
        try:
            info = folder.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


async def settle_dead_foreground_runs(rt: Runtime) -> None:
    """While the daemon serves: a `flow run` killed meanwhile (SIGKILL: it could not clean
    up) is settled within FOREGROUND_CHECK_S, as the next `flow run` would settle it: its
    record, what its nodes left running, its segments and its socket folder."""
    while True:
        await trio.sleep(FOREGROUND_CHECK_S)
        try:
            active = rt.store.interrupted_runs()
        except sqlite3.Error as exc:  # the store's own watch says what is wrong with it
            log.debug("foreground runs not checked: %s", exc)
            continue
        # only a pid that is gone: the start-time tag that tells a reused pid apart moves
        # with a stepped wall clock, which must not end a `flow run` that still runs (a
        # reused pid's run is settled at the next start, by the tag)
        gone = [info for info in active if _foreground_pid_gone(info)]
        if sum(settle_foreground(rt.store, info) for info in gone):
            await trio.to_thread.run_sync(sweep_dead_foreground_dirs)


def _foreground_pid_gone(info: dict[str, Any]) -> bool:
    process = pids.foreground_process(info)
    return process is not None and not pids.alive(process[0])


async def _recover(rt: Runtime, info: dict[str, Any], *, wait_stalled: bool) -> bool:
    """Adopt the run's living keeper and nodes, or start it again without them; False when
    its keeper lives but does not answer and `wait_stalled` says to wait for it."""
    run_id = info["id"]
    placed_here = any(node.get("machine") for node in info["nodes"])
    if placed_here and (rt.placer is None or info["status"] != "running"):
        # nodes on other machines are never started here; their members stop them once
        # cluster_grace is over, and this machine's are stopped below (docs/cluster.md)
        why = "it was stopped with the daemon" if info["status"] == "interrupted" else (
            "this daemon does not coordinate" if rt.placer is None else "it was starting")
        _fail_placed(rt, run_id, why)
        return True
    text = _dataflow_text(rt, run_id)
    dataflow = await rt.load(info["path"], text)
    if not dataflow.recover:
        log.info("run %s: recover: false, not recovered", run_id)
        _settle(rt.store, run_id, status="failed", error="interrupted (recover: false)")
        remove_run_segments(run_id)
        return True
    placed = _readopt(rt, info) if placed_here else None
    run = rt.make_run(run_id, info["name"], dataflow, rt.store.run_env(run_id), placed)
    # its graph edits, made again: the slots and endpoints its adopted nodes were wired with
    machines = served_machines() | (rt.placer.machines() if rt.placer else frozenset())
    graph_edits.replay(run, rt.store.run_edits(run_id), machines)
    if info["record"]:  # recorded from its start: on from here, in a file of its own
        run.record = recovered_path(info["record"])
        log.info("run %s: recording again, into %s", run_id, run.record)
    state = None
    adoptable = info["status"] != "interrupted"  # a run the daemon stopped has no keeper
    if adoptable:
        state = await probe_keeper(rt.context, run.keeper_endpoint)
    stalled = adoptable and state is None and placed is None and wait_stalled
    if stalled and keeper_alive(str(run.sockets)):
        log.warning("run %s: its keeper lives but does not answer: waiting for it up to "
                    "%.0fs, its nodes running on", run_id, km.KEEPER_HUNG_S)  # fmt: skip
        return False
    if placed is not None and state is None:
        killed = kill_stale_processes(run)
        _fail_placed(rt, run_id, f"its keeper here is gone ({killed} stale processes killed)")
        return True
    # without a keeper its reports are gone, but not what it wrote down
    exits = read_exits(run.run_dir / EXIT_LEDGER) if state is None else {}
    stopping = info["stop_grace"]  # a stop asked before the daemon died: finished, not undone
    run.stop_requested = stopping is not None and state is None
    for node in info["nodes"]:
        slot = run.slots.get(node["id"])
        if node["removed"]:  # `flow node remove`d before the crash: it stays out of sight
            run.removed.add(node["id"])
        if slot is not None and slot.spec.is_dynamic:
            _restore_dynamic(run, slot, node)
        elif slot is not None:
            generation = int(node["generation"])
            code = exits.get((slot.id, generation), MISSING)
            ended = ended_status(str(node["status"]), code)
            if ended is None and run.stop_requested:  # its keeper stopped it: it stays so
                ended = NodeStatus.STOPPED
            seen = {"exit_code": code} if code is not MISSING and ended is not None else {}
            restore(slot, generation, int(node["restarts"]), ended, **seen)
    if state is None:
        killed = kill_stale_processes(run)
        remove_run_segments(run_id)
        log.info("run %s: no keeper: %d stale processes killed; restarting it", run_id, killed)
    else:
        log.info("run %s: adopting its keeper and living nodes", run_id)
    # a full disk must not keep the run unsupervised: it goes on, degraded (SPEC 7.3)
    run.record_run(status="running", recovered=1, ended=None)
    run.status = RunStatus.RUNNING if state is not None else RunStatus.STARTING
    run.released = placed is not None  # past its start barrier already: not run again
    await rt.resume_run(run, state)
    if stopping is not None and state is not None:  # adopted: the stop goes on from here
        log.info("run %s: finishing the stop asked before the daemon died", run_id)
        rt.nursery.start_soon(rt.stop_run, run, float(stopping), False)
    if placed is not None and rt.placer is not None:
        rt.placer.watch_readopted(run_id)
    return True


def _restore_dynamic(run: Run, slot: NodeSlot, node: dict[str, Any]) -> None:
    """A dynamic node keeps its generation (a later attach takes the next one, which its
    receivers take as new); one attached when the daemon died is attached again if its
    process lives, and shown free (`dynamic`) if not."""
    restore(slot, int(node["generation"]), int(node["restarts"]))
    if node["status"] != str(NodeStatus.RUNNING):
        return
    # a run whose stop is being finished takes no process back: it is not attached again
    # (a report of it while the run lasts is refused and answered with STOP)
    alive = node["pid"] and pids.alive(int(node["pid"]))
    if alive and node["id"] not in run.removed and not run.stop_requested:
        dynamic.readopt(run, slot, int(node["pid"]))
    else:
        slot.transition(NodeStatus.DYNAMIC, pid=None)


def _fail_placed(rt: Runtime, run_id: str, why: str) -> None:
    """A run placed on several machines that is not re-adopted: failed. Its members are
    told to stop their nodes of it when they report (or stop them past the grace)."""
    log.warning("run %s was placed on several machines: not recovered: %s", run_id, why)
    if rt.placer is not None:
        rt.placer.forget(run_id)
    _settle(rt.store, run_id, status="failed", error="placed on several machines: not "
            f"recovered after the coordinator restarted: {why}")  # fmt: skip
    remove_run_segments(run_id)


def _readopt(rt: Runtime, info: dict[str, Any]) -> PlacedRun:
    """The placed run's relays again, each member's nodes as the store last saw them: alive
    with that generation and pid until the member's report says otherwise."""
    assert rt.placer is not None
    placement = read_placement(paths.run_dir(rt.home, info["id"]))
    states: dict[str, dict[str, km.NodeState]] = {}
    for node in info["nodes"]:
        machine, pid = node.get("machine"), node.get("pid")
        if machine and machine != rt.placer.here and pid and node["status"] == "running":
            states.setdefault(machine, {})[node["id"]] = km.NodeState(
                generation=int(node["generation"]), pid=int(pid), code=None, alive=True, tail=())
    return rt.placer.readopt(info["id"], placement, {m: km.State(nodes)
                                                     for m, nodes in states.items()})  # fmt: skip


def _dataflow_text(rt: Runtime, run_id: str) -> str:
    """The dataflow as the run was started: its copy in the run's folder, else the store's.

    The copy can be lost (a full disk, someone's cleanup); the store keeps the text too,
    and the copy is written again from it. With neither, the error says which file.
    """
    copy = paths.dataflow_copy(rt.home, run_id)
    try:
        return copy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"its copy of the dataflow {copy} cannot be read ({exc.__class__.__name__}: "
        problem += f"{getattr(exc, 'strerror', None) or exc})"
    text = rt.store.run_text(run_id)
    if text is None:
        raise RecoverableError(f"{problem}, and the state store has no copy of it")
    log.warning("run %s: %s: using the state store's copy", run_id, problem)
    with contextlib.suppress(OSError):
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, text)
    return text


MISSING = object()  # no exit recorded for that generation


def ended_status(recorded: str, exit_code: object) -> NodeStatus | None:
    """How a node of a recovered run had ended, or None: it comes back (C6).

    `recorded` is its status in the store; `exit_code` the one its keeper wrote down for
    that generation (MISSING if none). A node the store has `running` that exited by
    itself while no daemon listened has ended too: succeeded (0) or failed.
    """
    try:
        status = NodeStatus(recorded)
    except ValueError:  # not a status this flow knows: as if it had not ended
        return None
    if status is NodeStatus.RUNNING and exit_code is not MISSING:
        return NodeStatus.SUCCEEDED if exit_code == 0 else NodeStatus.FAILED
    return None if status.comes_back else status


def kill_stale_processes(run: Run) -> int:
    """SIGKILL the process groups of anything still running for this run; how many."""
    return kill_run_processes(run.id, str(run.sockets), str(run.home))


def kill_unknown_processes(rt: Runtime, waiting: set[str]) -> int:
    """SIGKILL nodes and keepers of this home that belong to no live run (a lost store);
    `waiting`: runs whose stalled keeper is waited for, alive too."""
    home = str(rt.home)
    sockets_mark = str(rt.socket_dir)
    live = {run.id for run in rt.runs.values()} | waiting
    # a `flow run` in some terminal owns its nodes: never ours to kill
    live |= {r["id"] for r in rt.store.runs(include_ended=True) if r["origin"] != "daemon"}
    live_sockets = {str(paths.run_socket_dir(rt.socket_dir, run_id)) for run_id in live}

    def unknown(environ: dict[str, str], cmdline: str) -> bool:
        if "daemon.keeper" in cmdline and sockets_mark in cmdline:
            return not any(mark in cmdline for mark in live_sockets)
        if environ.get("FLOW_HOME") != home:
            return False
        run = environ.get("FLOW_DATAFLOW")
        return run is not None and run not in live

    return kill_groups(unknown)


def remove_unknown_socket_folders(rt: Runtime, waiting: set[str]) -> None:
    """Socket folders of runs that are gone (their keeper was killed) are removed; those
    of `waiting` runs (a stalled keeper) stay."""
    live = {run.sockets for run in rt.runs.values()}
    live |= {paths.run_socket_dir(rt.socket_dir, run_id) for run_id in waiting}
    for folder in rt.socket_dir.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder not in live:
            shutil.rmtree(folder, ignore_errors=True)
