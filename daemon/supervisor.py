"""A run: its nursery, the start barrier, closing inputs downstream of finished nodes, result."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio
import zmq

from daemon import routing
from daemon.descriptor import Dataflow
from daemon.graph import downstream
from daemon.logformat import LogRecord
from daemon.logs import NodeLog, Tee
from daemon.node_process import NodeSlot
from daemon.states import NodeStatus, RunStatus
from daemon.stdout_output import StdoutOutput
from daemon.store import Store

log = logging.getLogger(__name__)

START_TIMEOUT_S = float(os.environ.get("FLOW_START_TIMEOUT", "30"))
DEFAULT_GRACE_S = 10.0
DAEMON_GRACE_S = 30.0

SendToNode = Callable[[bytes, dict[str, Any]], None]


@attrs.define(eq=False)
class Run:
    """One run of a dataflow, live in this daemon."""

    id: str
    name: str | None
    dataflow: Dataflow
    store: Store
    home: Path
    sockets: Path  # this run's socket folder
    daemon_endpoint: str
    send: SendToNode
    context: zmq.Context[zmq.Socket[bytes]]
    base_env: dict[str, str]
    extra_env: dict[str, str]
    tee: Tee | None = None
    status: RunStatus = RunStatus.STARTING
    stop_requested: bool = False
    cancel_grace: float = 2.0  # when the daemon itself is going down hard
    error: str | None = None
    degraded: str | None = None
    released: bool = False
    late: list[str] = attrs.field(factory=list)  # nodes that missed the start barrier
    slots: dict[str, NodeSlot] = attrs.field(factory=dict)
    logs: dict[str, NodeLog] = attrs.field(factory=dict)
    done: trio.Event = attrs.field(factory=trio.Event)
    _endpoints: dict[tuple[str, str], str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._endpoints = routing.input_endpoints(self.dataflow, self.sockets)
        for spec in self.dataflow.nodes:
            slot = NodeSlot(spec=spec, run=self)
            if spec.is_dynamic:
                slot.status = NodeStatus.DYNAMIC
            self.slots[spec.id] = slot
            self.logs[spec.id] = NodeLog(
                path=self.log_dir / f"{spec.id}.log",
                node_id=spec.id,
                on_failure=self.mark_degraded,
                tee=self.tee,
            )

    @property
    def run_dir(self) -> Path:
        return self.home / "runs" / self.id

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def descriptor_copy(self) -> Path:
        return self.run_dir / "dataflow.yml"

    @property
    def spawned(self) -> list[NodeSlot]:
        return [s for s in self.slots.values() if not s.spec.is_dynamic]

    def spawn_command(self, slot: NodeSlot) -> tuple[list[str], dict[str, str]]:
        config = routing.node_config(
            self.dataflow,
            slot.spec,
            run_id=self.id,
            run_name=self.name,
            generation=slot.generation,
            restarts=slot.restarts,
            daemon_endpoint=self.daemon_endpoint,
            descriptor_copy=self.descriptor_copy,
            endpoints=self._endpoints,
            daemon_grace=DAEMON_GRACE_S,
        )
        env = routing.node_environment(self.dataflow, slot.spec, self.base_env, self.extra_env)
        env["FLOW_NODE_CONFIG"] = json.dumps(config)
        env["FLOW_DATAFLOW"] = self.id
        return routing.node_argv(slot.spec), env

    def open_stdout_output(self, slot: NodeSlot) -> StdoutOutput | None:
        output = slot.spec.send_stdout_as
        if output is None:
            return None
        edges = routing.output_edges(self.dataflow, slot.spec, self._endpoints)[output]
        return StdoutOutput.open(self.context, f"{slot.id}/{output}", slot.generation, edges)

    def send_to_node(self, slot: NodeSlot, message: dict[str, Any]) -> None:
        if slot.connected.is_set():
            self.send(slot.identity(), message)

    def log_line(self, slot: NodeSlot, record: LogRecord) -> None:
        self.logs[slot.id].write(record)

    def mark_degraded(self, what: str) -> None:
        if self.degraded != what:
            self.degraded = what
            log.warning("run %s degraded: %s", self.id, what)
            try:
                self.store.update_run(self.id, degraded=what)
            except Exception:  # recording the degradation is itself auxiliary
                log.exception("could not record degradation of run %s", self.id)

    def set_status(self, status: RunStatus, *, error: str | None = None) -> None:
        self.status = status
        fields: dict[str, Any] = {"status": str(status)}
        if error is not None:
            self.error = error
            fields["error"] = error
        if not status.active:
            fields["ended"] = time.time()
        self.store.update_run(self.id, **fields)
        log.info("run %s: %s%s", self.id, status, f" ({error})" if error else "")

    async def stop(self, grace: float) -> None:
        """Stop every live node with the STOP, SIGTERM, SIGKILL sequence, in parallel."""
        self.stop_requested = True
        async with trio.open_nursery() as nursery:
            for slot in self.spawned:
                slot.stop_requested = True
                nursery.start_soon(slot.terminate, grace)

    def node_finished(self, slot: NodeSlot) -> None:
        """Close the inputs fed by a node that ended without saying goodbye (SPEC 5)."""
        if slot.said_bye or not self.released:
            return
        for edge in downstream(self.dataflow, slot.id):
            target = self.slots[edge.target]
            self.send_to_node(
                target,
                {"t": "upstream_done", "input": edge.input, "source": f"{slot.id}/{edge.output}"},
            )

    def result_status(self) -> RunStatus:
        if self.stop_requested:
            return RunStatus.STOPPED
        if any(s.status is NodeStatus.FAILED for s in self.spawned):
            return RunStatus.FAILED
        return RunStatus.SUCCEEDED

    def info(self) -> dict[str, Any]:
        data = self.store.run(self.id)
        assert data is not None
        return data


async def supervise(
    run: Run, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Own a run from spawn to result; cancelled, it stops every node first."""
    run.sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        async with trio.open_nursery() as nursery:
            for slot in run.spawned:
                nursery.start_soon(_watch, run, slot)
                await nursery.start(slot.serve)
            task_status.started()
            await _start_barrier(run)
            for slot in run.spawned:
                await slot.finished.wait()
        for node_id in run.late:
            run.store.update_node(run.id, node_id, status="failed")
        if run.late:
            assert run.error is not None
            run.set_status(RunStatus.FAILED, error=run.error)
        else:
            run.set_status(run.result_status())
    finally:
        for node_log in run.logs.values():
            node_log.close()
        shutil.rmtree(run.sockets, ignore_errors=True)
        run.done.set()


async def _watch(run: Run, slot: NodeSlot) -> None:
    await slot.finished.wait()
    run.node_finished(slot)


async def _start_barrier(run: Run) -> None:
    """Release every node at once when all have connected (or exited) (SPEC 5)."""
    with trio.move_on_after(START_TIMEOUT_S) as scope:
        for slot in run.spawned:
            await slot.settled.wait()
    if scope.cancelled_caught:
        run.late = [s.id for s in run.spawned if not s.settled.is_set()]
        run.error = f"nodes did not connect within {START_TIMEOUT_S:g}s: {', '.join(run.late)}"
        log.warning("run %s: %s", run.id, run.error)
        run.store.update_run(run.id, error=run.error)
        await run.stop(grace=1.0)
        return
    run.released = True
    for slot in run.spawned:
        run.send_to_node(slot, {"t": "start"})
    if run.status is RunStatus.STARTING:
        run.set_status(RunStatus.RUNNING)
    for slot in run.spawned:
        if slot.finished.is_set():
            run.node_finished(slot)
