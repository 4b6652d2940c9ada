"""One node's slot in a run, owned by one task: spawn, wait, restart, stop (SPEC 5).

The process itself is the keeper's child (daemon/keeper.py); the slot decides. A new
generation is recorded before each spawn, so that messages and control calls from an
older generation can be refused. Stopping sends STOP, then SIGTERM to the node's process
group after the grace, then SIGKILL after half that again.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

import attrs
import trio

from daemon.model.descriptor import NodeSpec
from daemon.model.states import NodeStatus

if TYPE_CHECKING:
    from daemon.run.supervisor import Run

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 30.0
# A SIGKILLed process is gone at once unless the kernel holds it; bound the wait anyway.
KILL_WAIT_S = 5.0


@attrs.define(eq=False)
class NodeSlot:
    """The place of one node in a run: at most one live process at a time."""

    spec: NodeSpec
    run: Run
    status: NodeStatus = NodeStatus.PENDING
    generation: int = 0
    restarts: int = 0
    pid: int | None = None
    exit_code: int | None = None
    signal_name: str | None = None
    spawn_error: str | None = None
    said_bye: bool = False
    stop_requested: bool = False
    restart_requested: bool = False  # `flow node restart`: the next generation comes at once
    killed: bool = False
    stats: dict[str, Any] | None = None  # the node's latest statistics report
    attached: bool = False  # a dynamic node's process is attached (daemon/dynamic.py)
    last_seen: float = 0.0  # monotonic time of the node's last message
    stderr_tail: list[str] = attrs.field(factory=list)
    restart_times: tuple[float, ...] = ()
    connected: trio.Event = attrs.field(factory=trio.Event)  # this generation said hello
    spawned: trio.Event = attrs.field(factory=trio.Event)  # this generation's spawn answered
    exited: trio.Event = attrs.field(factory=trio.Event)  # this generation's process ended
    first_spawn: trio.Event = attrs.field(factory=trio.Event)  # first spawn answered
    settled: trio.Event = attrs.field(factory=trio.Event)  # first generation connected or ended
    finished: trio.Event = attrs.field(factory=trio.Event)  # no more generations will come
    _spawn_answered: trio.Event = attrs.field(factory=trio.Event)  # replaced on each answer

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def alive(self) -> bool:
        return self.spawned.is_set() and self.pid is not None and not self.exited.is_set()

    def identity(self) -> bytes:
        return f"{self.run.id}/{self.id}/{self.generation}".encode()

    # ---------------------------------------------------------------- keeper events

    def mark_connected(self) -> None:
        self.connected.set()
        self.settled.set()

    def on_keeper_event(self, message: dict[str, Any]) -> None:
        """A keeper report about this node; reports about older generations are stale."""
        if int(message.get("generation", -1)) != self.generation:
            return
        kind = message["t"]
        if kind == "spawned":
            self.pid = int(message["pid"])
            self.spawned.set()
        elif kind == "spawn_failed":
            self.spawn_error = str(message.get("error"))
            self.spawned.set()
        elif kind == "exited":
            code = message.get("code")
            self.exit_code = None if code is None else int(code)
            self.stderr_tail = [str(line) for line in message.get("tail") or []]
            self.exited.set()
            self.settled.set()

    # ---------------------------------------------------------------- the task

    def adopt(self, state: dict[str, Any]) -> None:
        """Take over a generation a keeper kept alive through a daemon restart (SPEC 7.4)."""
        self.generation = int(state["generation"])
        self.pid = int(state["pid"])
        self.spawned.set()
        self.first_spawn.set()
        self.settled.set()
        if state.get("alive"):
            self.status = NodeStatus.RUNNING
            self.connected.set()  # its DEALER reconnects to the new daemon by itself
        else:
            code = state.get("code")
            self.exit_code = None if code is None else int(code)
            self.stderr_tail = [str(line) for line in state.get("tail") or []]
            self.exited.set()

    async def serve(self, *, adopted: bool = False) -> None:
        """Run generations until the restart policy says no more; stop them if cancelled."""
        try:
            if adopted:
                await self._wait_generation()
            else:
                await self._run_generation()
            while (delay := self.run.restart_delay(self)) is not None:
                log.info("run %s: node %s restarts in %.2fs", self.run.id, self.id, delay)
                self.run.store.update_node(self.run.id, self.id, status="restarting")
                await trio.sleep(delay)
                if self.stop_requested or self.run.stop_requested:
                    break
                self.restarts += 1
                self.run.store.update_node(self.run.id, self.id, restarts=self.restarts)
                await self._run_generation()
        finally:
            self.first_spawn.set()
            self.settled.set()
            self.finished.set()

    async def _run_generation(self) -> None:
        run = self.run
        self.generation += 1
        self.connected, self.spawned, self.exited = trio.Event(), trio.Event(), trio.Event()
        self.pid = self.exit_code = self.signal_name = self.spawn_error = None
        self.said_bye = self.killed = False
        run.store.update_node(run.id, self.id, generation=self.generation, status="pending")
        run.spawn(self)
        with trio.move_on_after(SPAWN_TIMEOUT_S):
            await self.spawned.wait()
        self.first_spawn.set()
        self._spawn_answered.set()
        self._spawn_answered = trio.Event()
        if self.pid is None:
            self._spawn_failed(self.spawn_error or f"no answer in {SPAWN_TIMEOUT_S:g}s")
            return
        self.status = NodeStatus.RUNNING
        run.store.update_node(run.id, self.id, pid=self.pid, status="running")
        run.store.add_event(run.id, self.id, "spawn", f"pid {self.pid} gen {self.generation}")
        await self._wait_generation()

    async def _wait_generation(self) -> None:
        run = self.run
        try:
            await self.exited.wait()
        finally:
            if not self.exited.is_set():
                with trio.CancelScope(shield=True):
                    await self.terminate(grace=run.cancel_grace)
        self._record_exit()

    def _spawn_failed(self, cause: str) -> None:
        self.status = NodeStatus.FAILED
        self.stderr_tail = [f"could not start: {cause}"]
        self.settled.set()
        log.warning("run %s: node %s could not start: %s", self.run.id, self.id, cause)
        self.run.store.update_node(
            self.run.id, self.id, status="failed", stderr_tail=self.stderr_tail
        )

    async def restart_now(self, grace: float) -> None:
        """Stop this generation and start the next one in the same slot (SPEC 5).

        Returns once the next generation's spawn was answered (or the slot finished).
        """
        old = self.generation
        self.restart_requested = True
        await self.terminate(grace)
        with trio.move_on_after(SPAWN_TIMEOUT_S):
            while self.generation == old or not self.spawned.is_set():
                if self.finished.is_set():
                    return
                await self._spawn_answered.wait()

    async def terminate(self, grace: float) -> None:
        """STOP, grace, SIGTERM to the group, grace / 2, SIGKILL (SPEC 5)."""
        self.stop_requested = True
        if not self.alive:
            return
        self.run.send_to_node(self, {"t": "stop"})
        with trio.move_on_after(grace):
            await self.exited.wait()
        if not self.exited.is_set():
            log.info("run %s: node %s: SIGTERM after %.1fs", self.run.id, self.id, grace)
            self.run.signal_node(self, signal.SIGTERM)
            with trio.move_on_after(grace / 2):
                await self.exited.wait()
        if not self.exited.is_set():
            log.warning("run %s: node %s ignored SIGTERM: SIGKILL", self.run.id, self.id)
            self.killed = True
            self.run.signal_node(self, signal.SIGKILL)
            with trio.move_on_after(KILL_WAIT_S):
                await self.exited.wait()

    def _record_exit(self) -> None:
        code = self.exit_code
        if code is not None and code < 0:
            self.signal_name = signal.Signals(-code).name
        if self.killed:
            self.status = NodeStatus.KILLED
        elif self.stop_requested:
            self.status = NodeStatus.STOPPED
        elif code == 0:
            self.status = NodeStatus.SUCCEEDED
        else:
            self.status = NodeStatus.FAILED
        failed = self.status is NodeStatus.FAILED
        self.run.store.update_node(
            self.run.id,
            self.id,
            status=str(self.status),
            exit_code=code,
            signal=self.signal_name,
            stderr_tail=self.stderr_tail if failed else [],
        )
        self.run.store.add_event(self.run.id, self.id, "exit", f"{self.status} code {code}")
        log.info("run %s: node %s %s (exit %s)", self.run.id, self.id, self.status, code)
