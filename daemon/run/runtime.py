"""The daemon's live state: its runs, store and node channel, and starting a run."""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio
import zmq

from daemon.files import write_atomic
from daemon.keeper.logs import Tee
from daemon.model import pids
from daemon.model.descriptor import MAX_YAML_BYTES, Dataflow, parse_dataflow
from daemon.model.errors import (
    BadRequest,
    ControlSocketUnavailable,
    DataflowInvalid,
    FatalError,
    ForegroundRun,
    RecoverableError,
    RunNotActive,
    ShuttingDown,
    StateStoreUnusable,
    UnknownRun,
    ambiguous_run,
)
from daemon.model.keeper_messages import State
from daemon.model.python_scripts import python_syntax_problems
from daemon.model.run_names import pick_run
from daemon.model.states import RunStatus
from daemon.run.lifecycle import supervise
from daemon.run.limits import FD_RESERVE, FDS_PER_NODE, fds_left
from daemon.run.node_channel import NodeChannel
from daemon.run.params import ParamDesk
from daemon.run.placement import PLACEMENT_FILE, PlacedRun, Placer, placement_text
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run
from daemon.store import Store
from node_sdk import paths, private
from node_sdk.channel import Message as NodeMessage

log = logging.getLogger(__name__)

MAX_UNSAVED = 100  # ended runs held in memory for a store that takes no writes


def new_run_id() -> str:
    """A UUID v7: time-ordered, so ids sort by start (SPEC 0)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def prepare_private_home(home: Path) -> None:
    """umask 077, then FLOW_HOME 0700 with its files 0600; another user's refused (SPEC 10).

    The umask comes first and stays: the state store, logs and sockets made later are
    this user's alone without a chmod race (nodes inherit it).
    """
    os.umask(0o077)
    try:
        private.prepare_home(home)
    except private.NotPrivate as exc:
        raise StateStoreUnusable(str(exc)) from None


def prepare_socket_dir(folder: Path) -> None:
    """Create the private socket folder (0700); refuse a symlink or another user's (SPEC 10)."""
    try:
        private.ensure_private_dir(folder)
    except private.NotPrivate as exc:
        raise ControlSocketUnavailable(str(exc)) from None


@attrs.define(eq=False)
class _Started:
    """A task status that remembers whether `started` was called."""

    inner: trio.TaskStatus[None]
    done: bool = False

    def started(self, value: None = None) -> None:
        self.done = True
        self.inner.started(value)


def served_machines() -> frozenset[str]:
    """The machine names this (single-machine) daemon serves: `local` and the host name."""
    return frozenset({"local", socket.gethostname()})


@attrs.define(eq=False)
class Runtime:
    """Everything a request handler may touch."""

    home: Path
    socket_dir: Path
    store: Store
    nodes_endpoint: str
    nursery: trio.Nursery
    context: zmq.Context[zmq.Socket[bytes]]
    channel: NodeChannel | None = None
    runs: dict[str, Run] = attrs.field(factory=dict)
    # `flow record`'s recordings by id, with their run: outlive it until their command
    # has read the summary (daemon/control/recordings.py bounds them)
    recordings: dict[str, tuple[Run, Any]] = attrs.field(factory=dict)
    # ended runs whose last writes the store did not take (a full disk), until it does
    # (daemon/run/unsaved.py; store_watch retries); the oldest let go past MAX_UNSAVED
    unsaved: dict[str, Run] = attrs.field(factory=dict)
    started_at: float = attrs.field(factory=time.time)
    base_env: dict[str, str] = attrs.field(factory=lambda: dict(os.environ))
    origin: str = "daemon"
    tee: Tee | None = None
    degraded: list[str] = attrs.field(factory=list)
    shutdown_requested: trio.Event = attrs.field(factory=trio.Event)
    shutting_down: bool = False  # set when that stop of every run begins: no start after it
    leases: dict[str, Any] = attrs.field(factory=dict)  # observer leases (daemon/control/topics.py)
    cpu_samples: dict[int, tuple[float | None, float]] = attrs.field(factory=dict)  # flow top
    # this daemon's cluster role (daemon/cluster: a Coordinator, a Member), None alone; typed
    # `object` here because the cluster package sits above this layer
    cluster: object | None = None
    placer: Placer | None = None  # the coordinator's: nodes placed on other machines
    params: ParamDesk | None = None  # parameter changes waiting for their node's answer
    metrics_url: str | None = None  # where `flow up --metrics` serves (daemon/run/metrics.py)
    # runs whose keeper was stalled at this daemon's start, recovered once it answers
    # (daemon/run/recovery.py): each set when its recovery is over; a stop waits for it
    recovering: dict[str, trio.Event] = attrs.field(factory=dict)

    def note_drops(self, socket: str, count: int) -> None:
        """A socket dropped outgoing messages: one line per socket in `flow status`."""
        mark = f"{socket}: "
        kept = [line for line in self.degraded if not line.startswith(mark)]
        self.degraded[:] = [*kept, f"{mark}{count} outgoing messages dropped"]

    def run_send(self, run_id: str) -> Callable[[bytes, NodeMessage], bool] | None:
        """A live run's node-channel send (over the cluster link to a node placed elsewhere)."""
        run = self.runs.get(run_id)
        return None if run is None else run.send

    def find_slot(self, run_id: str, node_id: str) -> NodeSlot | None:
        run = self.runs.get(run_id)
        return None if run is None else run.slots.get(node_id)

    def heard_from(self, run_id: str, slot: NodeSlot) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            run.heard_from(slot)

    async def recovered(self, run_id: str | None = None) -> None:
        """Once the recovery of `run_id` (of every run, with None) that waits for a stalled
        keeper is over: bounded by KEEPER_HUNG_S and a probe, as that recovery is."""
        for waiting, done in list(self.recovering.items()):
            if run_id is None or waiting == run_id:
                await done.wait()

    def resolve(self, ref: str) -> dict[str, Any]:
        """The run info a RUN argument names: a UUID, a unique prefix, or a name (an id
        wins over a name: `pick_run`)."""
        if not ref or len(ref) > 200:
            raise BadRequest("a run reference must be 1 to 200 characters")
        picked = pick_run(ref, self.store.find_runs(ref), ("starting", "running"))
        if isinstance(picked, dict):
            return picked
        if not picked:
            raise UnknownRun(ref)
        raise BadRequest(ambiguous_run(ref, picked))

    def live_run(self, ref: str) -> Run:
        info = self.resolve(ref)
        run = self.runs.get(info["id"])
        foreground = pids.foreground_process(info) if run is None else None
        if foreground is not None:
            pid, alive = foreground
            raise ForegroundRun(info["name"] or info["id"], str(pid), alive=alive)
        if run is None or not run.status.active:
            raise RunNotActive(info["id"], info["status"], info["name"])
        return run

    async def load(self, path: str, text: str) -> Dataflow:
        """Validate a dataflow in a worker thread: a 10,000-node file takes seconds to check,
        and the loop keeps serving pings, heartbeats and other runs meanwhile."""
        if len(text.encode()) > MAX_YAML_BYTES:
            raise DataflowInvalid([f"{path}: file is larger than {MAX_YAML_BYTES} bytes"])
        machines = served_machines() | (self.placer.machines() if self.placer else frozenset())
        parse = functools.partial(parse_dataflow, Path(path), text, machines=machines)
        return await trio.to_thread.run_sync(parse)

    async def start_run(
        self, path: str, text: str, name: str | None, env: dict[str, str],
        record: str | None = None,
    ) -> Run:  # fmt: skip
        """Validate, record, and start a run; returns once every node is spawned.
        `record`: an MCAP file to record every output into (run/recording.py)."""
        dataflow = await self.load(path, text)
        # a Python node that cannot even compile fails nothing later: the start is refused
        problems = await trio.to_thread.run_sync(python_syntax_problems, dataflow)
        if problems:
            raise DataflowInvalid(problems)
        left, needed = fds_left(), FD_RESERVE + FDS_PER_NODE * len(dataflow.nodes)
        if left < needed:
            # libzmq aborts the daemon on EMFILE in accept: refuse work before it comes to that
            busy = "daemon busy" if self.origin == "daemon" else "cannot start"  # `flow run`
            raise BadRequest(f"{busy}: {left} file descriptors left, a start needs {needed} "
                             "(the open-file limit: ulimit -n)")  # fmt: skip
        run_name = name or dataflow.name
        twins = [r for r in self.runs.values() if r.name == run_name and r.status.active]
        if run_name and twins:  # a name must say which active run it means
            raise BadRequest(
                f"a run named {run_name} is already active ({twins[0].id}): stop it, "
                "or give this one another name with --name"
            )
        run_id = new_run_id()
        placed = None if self.placer is None else await self.placer.place(run_id, dataflow)
        try:
            if self.shutting_down:  # its stop of every run has begun: this one would outlive it
                raise ShuttingDown()
            run = self.make_run(run_id, run_name, dataflow, env, placed)
            run.record = record
            self.store.create_run(
                run_id,
                run_name,
                str(dataflow.path),
                [(n.id, "dynamic" if n.is_dynamic else "pending") for n in dataflow.nodes],
                self.origin,
                env,
                text,
                machines=placed.placement.machine_of if placed is not None else None,
                processes={n.id for n in dataflow.nodes if not n.connects},
                record=record,
            )
        except BaseException:
            if self.placer is not None:  # nothing of it started: nothing to relay
                self.placer.forget(run_id)
            raise
        try:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run.descriptor_copy, text)
            if placed is not None:  # what a restarted coordinator re-adopts it from
                write_atomic(run.run_dir / PLACEMENT_FILE, placement_text(placed.placement))
        except OSError as exc:
            run.mark_degraded(f"recording: {exc.strerror or exc}")
        self.runs[run_id] = run
        log.info("run %s (%s) starting: %s", run_id, run_name, dataflow.path)
        await self.nursery.start(self._supervise, run)
        return run

    def make_run(
        self,
        run_id: str,
        name: str | None,
        dataflow: Dataflow,
        env: dict[str, str],
        placed: PlacedRun | None = None,
    ) -> Run:
        assert self.channel is not None
        return Run(
            id=run_id,
            name=name,
            dataflow=dataflow,
            store=self.store,
            home=self.home,
            sockets=paths.run_socket_dir(self.socket_dir, run_id),
            daemon_endpoint=self.nodes_endpoint,
            send=self.channel.send,
            context=self.context,
            base_env=self.base_env,
            extra_env=env,
            tee=self.tee,
            in_process=self.origin.startswith("foreground"),
            placed=placed,
        )

    async def resume_run(self, run: Run, adopt: State | None) -> None:
        """Supervise a recovered run: adopting its living keeper, or starting it again."""
        self.runs[run.id] = run
        await self.nursery.start(self._supervise, run, adopt)

    async def _supervise(
        self,
        run: Run,
        adopt: State | None = None,
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        """A run's failure stays the run's: only a fatal error reaches the root nursery."""
        started = _Started(task_status)
        try:
            await supervise(run, adopt=adopt, task_status=started)
        except FatalError:
            raise
        except Exception as exc:
            log.exception("run %s failed in the daemon", run.id)
            try:
                run.set_status(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            except RecoverableError:
                log.exception("could not record the failure of run %s", run.id)
            if not started.done:
                raise  # to the `start` request, as its error reply
        finally:
            # keep finished runs out of memory; the store has them (or will: a full disk)
            self.runs.pop(run.id, None)
            if run.unsaved:
                self.unsaved[run.id] = run
                while len(self.unsaved) > MAX_UNSAVED:
                    lost = self.unsaved.pop(next(iter(self.unsaved)))
                    log.error("run %s: its end was never written to the store", lost.id)
            if self.placer is not None:
                self.placer.forget(run.id)

    async def stop_run(self, run: Run, grace: float, force: bool) -> None:
        """A stop asked of the run; written first, so that a daemon dying before it is
        done leaves it to the recovery to finish, not to undo."""
        if not run.interrupted:  # the daemon's own end by a signal: recovery restarts it
            run.record_run(stop_grace=0.0 if force else grace)
        await run.stop(0.0 if force else grace)
        await run.done.wait()

    def wait_info(self, run_id: str) -> dict[str, Any]:
        info = self.store.run(run_id)
        if info is None:
            raise UnknownRun(run_id)
        return self.as_known(info)

    def as_known(self, info: dict[str, Any]) -> dict[str, Any]:
        """A stored run's `info` with what the store has not taken yet (a full disk)."""
        run = self.runs.get(info["id"]) or self.unsaved.get(info["id"])
        return info if run is None else run.unsaved.over(info)

    def active_runs(self) -> list[Run]:
        return [r for r in self.runs.values() if r.status.active or not r.done.is_set()]


async def serve_nursery(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    """A nursery that lives until cancelled, for tasks started later (runs, requests)."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()
