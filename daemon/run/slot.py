"""One node's slot in a run, owned by one task: spawn, wait, restart, stop (SPEC 5).

The process itself is the keeper's child (daemon/keeper/process.py); the slot decides. A new
generation is recorded before each spawn, so that messages and control calls from an
older generation can be refused. Stopping sends STOP, then SIGTERM to the node's process
group after the grace, then SIGKILL after half that again.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, Protocol

import attrs
import trio

from daemon.model.descriptor import NodeSpec
from daemon.model.keeper_messages import Exited, OutputCounts, Spawned, SpawnFailed
from daemon.model.node_stats import ended
from daemon.model.retry import Backoff, RetryExhausted
from daemon.model.states import KEEPS_TAIL, NodeStatus, exit_status
from daemon.run.retry import retry_async
from node_sdk import channel

log = logging.getLogger(__name__)


class _OutOfResources(Exception):
    """A spawn failed for want of something that comes back (fds, processes, memory)."""


SPAWN_TIMEOUT_S = 30.0
# a keeper out of fds or processes (EMFILE, EAGAIN) may have them again soon: a few tries
SPAWN_POLICY = Backoff(attempts=6, initial=0.1, max_delay=1.0, deadline=SPAWN_TIMEOUT_S)
# A SIGKILLed process is gone at once unless the kernel holds it; bound the wait anyway.
KILL_WAIT_S = 5.0

# store column -> slot attribute, for the fields `transition` keeps in both places
_MIRRORED = {"generation": "generation", "pid": "pid", "restarts": "restarts",
             "exit_code": "exit_code", "signal": "signal_name", "stderr_tail": "stderr_tail"}


class SlotHost(Protocol):
    """What a slot may ask of its run, and nothing more (the run's `Run` implements it)."""

    @property
    def id(self) -> str: ...

    @property
    def stop_requested(self) -> bool: ...

    @property
    def interrupted(self) -> bool:
        """The daemon is going down by a signal: what it stops comes back at recovery."""

    @property
    def cancel_grace(self) -> float: ...

    def spawn(self, slot: NodeSlot) -> None:
        """Ask the keeper to start the slot's current generation."""

    def restart_delay(self, slot: NodeSlot) -> float | None:
        """Seconds until the slot's next generation, or None: no more."""

    def send_to_node(self, slot: NodeSlot, message: channel.Message) -> None:
        """A node-channel message to the slot's connected process."""

    def signal_node(self, slot: NodeSlot, sig: signal.Signals) -> None:
        """A signal to the slot's process group, through the keeper."""

    def record_node(self, node_id: str, fields: dict[str, Any]) -> None:
        """Write node fields to the store; a failed write degrades the run, never fails it."""

    def record_event(self, node_id: str, kind: str, detail: str) -> None:
        """Append to the run's event log (auxiliary, like `record_node`)."""

    def node_connected(self, slot: NodeSlot) -> None:
        """The slot's process said hello: release it if the run is past its barrier."""

    def node_detached(self, slot: NodeSlot) -> None:
        """A dynamic slot's process went away: its senders stop sending to it."""

    def receiver_down(self, slot: NodeSlot, *, restarting: bool) -> None:
        """Tell the nodes feeding the slot that it is down, and whether it comes back."""


@attrs.define(eq=False)
class NodeSlot:
    """The place of one node in a run: at most one live process at a time."""

    spec: NodeSpec
    run: SlotHost
    status: NodeStatus = NodeStatus.PENDING
    generation: int = 0
    restarts: int = 0
    pid: int | None = None
    exit_code: int | None = None
    signal_name: str | None = None
    spawn_error: str | None = None
    spawn_transient: bool = False  # the last spawn failed for want of fds or processes
    said_bye: bool = False  # written only by `bye` / `forget_bye`
    stop_requested: bool = False
    restart_requested: bool = False  # `flow node restart`: the next generation comes at once
    killed: bool = False
    lost: bool = False  # its machine was lost past the grace: it ends `lost`
    stats: dict[str, Any] | None = None  # its latest statistics (daemon/run/stdout_stats.py)
    stdout_counts: OutputCounts | None = None  # its keeper's, for its own next `stats` report
    attached: bool = False  # a dynamic node's process is attached (`attach` / `detach`)
    last_seen: float = 0.0  # monotonic time of the node's last message
    active_at: float = 0.0  # when its own thread was last in next() or sending (health.py)
    kill_cause: str | None = None  # why the daemon killed this generation (health.py)
    stderr_tail: list[str] = attrs.field(factory=list)
    restart_times: tuple[float, ...] = ()
    connected: trio.Event = attrs.field(factory=trio.Event)  # this generation said hello
    spawned: trio.Event = attrs.field(factory=trio.Event)  # this generation's spawn answered
    exited: trio.Event = attrs.field(factory=trio.Event)  # this generation's process ended
    first_spawn: trio.Event = attrs.field(factory=trio.Event)  # first spawn answered
    settled: trio.Event = attrs.field(factory=trio.Event)  # first generation connected or ended
    finished: trio.Event = attrs.field(factory=trio.Event)  # no more generations will come
    _spawn_answered: trio.Event = attrs.field(factory=trio.Event)  # replaced on each answer
    _stopping: trio.Event = attrs.field(factory=trio.Event)  # a stop or a lost keeper: for good
    _held: dict[str, Any] = attrs.field(factory=dict)  # store fields `transition` holds back

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def alive(self) -> bool:
        return self.spawned.is_set() and self.pid is not None and not self.exited.is_set()

    @property
    def current_stats(self) -> dict[str, Any] | None:
        """Its statistics as shown: once its generation ended, its totals only (node_stats)."""
        return self.stats if self.attached or self.alive else ended(self.stats)

    def identity(self) -> bytes:
        return f"{self.run.id}/{self.id}/{self.generation}".encode()

    def transition(
        self, status: NodeStatus | None = None, hold: bool = False, **fields: Any
    ) -> None:
        """The one writer of node state: memory and the store together, so they agree.

        `fields` are store columns (`generation`, `pid`, `restarts`, `exit_code`,
        `signal`, `stderr_tail`); the mirrored ones are set on the slot first. `hold`:
        memory now, the store with the next transition, in the same write: a generation's
        end goes down with what its restart policy made of it (`serve`), so a daemon killed
        between the two never leaves a node that was to restart recorded as ended for good
        (recovery would never start it again).
        """
        for column, value in fields.items():
            if column in _MIRRORED:
                setattr(self, _MIRRORED[column], value)
        if status is not None:
            self.status = status
            fields["status"] = str(status)
        if hold:
            self._held.update(fields)
            return
        if self._held:
            fields, self._held = {**self._held, **fields}, {}
        self.run.record_node(self.id, fields)

    # ---------------------------------------------------------------- node channel

    def hello(self) -> None:
        """This generation's process bound its inputs and said hello."""
        self.last_seen = self.active_at = time.monotonic()
        self.mark_connected()
        self.run.node_connected(self)

    def bye(self) -> None:
        """This generation sent end-of-stream on every output itself."""
        self.last_seen = time.monotonic()
        self.said_bye = True
        if self.attached:
            self.detach("closed")

    def forget_bye(self) -> None:
        """Close its receivers from the daemon whatever it says (the node is being removed)."""
        self.said_bye = False

    def attach(self, pid: int | None) -> None:
        """A process becomes this dynamic node: a new generation (SPEC 6)."""
        self.attached = True
        self.last_seen = time.monotonic()
        self.connected = trio.Event()
        self.said_bye = False
        self.transition(NodeStatus.RUNNING, generation=self.generation + 1, pid=pid)
        self.run.record_event(self.id, "attach", f"pid {pid} gen {self.generation}")

    def detach(self, why: str) -> None:
        """Free a dynamic slot: its senders stop sending; its downstream inputs stay open."""
        if not self.attached:
            return
        self.attached = False
        self.connected = trio.Event()
        self.run.node_detached(self)
        self.transition(NodeStatus.DYNAMIC, pid=None)
        self.run.record_event(self.id, "detach", why)
        log.info("run %s: dynamic node %s detached: %s", self.run.id, self.id, why)

    # ---------------------------------------------------------------- keeper events

    def lose_process(self, cause: str) -> None:
        """The keeper is gone and its report with it: this generation ends as failed."""
        self.spawn_error = self.spawn_error or cause  # never retried: nothing could spawn it
        self.stderr_tail = [*self.stderr_tail, cause]
        for event in (self.spawned, self.exited, self.settled, self._stopping):
            event.set()

    def mark_connected(self) -> None:
        self.connected.set()
        self.settled.set()

    def on_keeper_event(self, message: Spawned | SpawnFailed | Exited) -> None:
        """A keeper report about this node; reports about older generations are stale."""
        if message.generation != self.generation:
            return
        if isinstance(message, Spawned):
            self.pid = message.pid
            self.spawned.set()
        elif isinstance(message, SpawnFailed):
            self.spawn_error = message.error
            self.spawn_transient = message.transient
            self.spawned.set()
        else:
            self.exit_code = message.code
            self.stderr_tail = list(message.tail)
            self.exited.set()
            self.settled.set()

    # ---------------------------------------------------------------- the task

    async def serve(self, *, adopted: bool = False) -> None:
        """Run generations until the restart policy says no more; stop them if cancelled."""
        try:
            if self.status.finished:
                return  # restored as ended by recovery: no generation of it runs again
            if adopted:
                await self._wait_generation()
            else:
                await self._run_generation()
            while (delay := self.run.restart_delay(self)) is not None:
                log.info("run %s: node %s restarts in %.2fs", self.run.id, self.id, delay)
                self.transition(NodeStatus.RESTARTING, pid=None)  # no process meanwhile
                self.run.receiver_down(self, restarting=True)  # its senders wait for it
                with trio.move_on_after(delay):
                    await self._stopping.wait()  # a stop ends the delay at once
                # `flow node restart` during the delay wants the next generation now
                restart = self.take_restart_request()
                if (self.stop_requested and not restart) or self.run.stop_requested:
                    # stopped, its exit code kept (its policy had the crash in hand: a stop
                    # a moment later finds it running), or back later (the daemon's end)
                    interrupted = self.run.interrupted
                    self.transition(NodeStatus.INTERRUPTED if interrupted else NodeStatus.STOPPED)
                    break
                self.transition(restarts=self.restarts + 1)
                await self._run_generation()
        finally:
            try:
                if self._held:  # a generation's end that no restart followed
                    self.transition()
            finally:  # whatever the write did: a supervisor waits for these
                self.first_spawn.set()
                self.settled.set()
                self.finished.set()

    async def _run_generation(self) -> None:
        run = self.run
        self.connected, self.spawned, self.exited = trio.Event(), trio.Event(), trio.Event()
        self.exit_code = self.signal_name = self.spawn_error = None
        self.said_bye = self.killed = False
        self.kill_cause = None
        # the previous generation's ending is not this one's (`flow node info` showed it)
        self.transition(NodeStatus.PENDING, generation=self.generation + 1, pid=None,
                        exit_code=None, signal=None)  # fmt: skip
        try:
            await retry_async(self._spawn, what=f"spawning node {self.id}",
                              policy=SPAWN_POLICY, retry_on=(_OutOfResources,))  # fmt: skip
        except RetryExhausted as exc:
            self.spawn_error = str(exc)
        self.first_spawn.set()
        self._spawn_answered.set()
        self._spawn_answered = trio.Event()
        if self.pid is None:
            self._spawn_failed(self.spawn_error or f"no answer in {SPAWN_TIMEOUT_S:g}s")
            return
        self.transition(NodeStatus.RUNNING, pid=self.pid)
        run.record_event(self.id, "spawn", f"pid {self.pid} gen {self.generation}")
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

    async def _spawn(self) -> None:
        """One attempt; a keeper out of fds or processes (EMFILE, EAGAIN) is worth another."""
        self.spawned, self.spawn_error, self.spawn_transient = trio.Event(), None, False
        self.run.spawn(self)
        with trio.move_on_after(SPAWN_TIMEOUT_S):
            await self.spawned.wait()
        if self.pid is None and self.spawn_transient:
            raise _OutOfResources(self.spawn_error or "out of resources")

    def _spawn_failed(self, cause: str) -> None:
        self.settled.set()
        log.warning("run %s: node %s could not start: %s", self.run.id, self.id, cause)
        self.transition(NodeStatus.FAILED, stderr_tail=[f"could not start: {cause}"])

    def take_restart_request(self) -> bool:
        """True once after `restart_now`: the stop it made was for a restart, not for good."""
        if not self.restart_requested:
            return False
        self.restart_requested = self.stop_requested = False
        self._stopping = trio.Event()
        return True

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

    def tell_stop(self) -> bool:
        """Send STOP now (False: not alive, or not connected: a process node, or a node
        that has not connected yet, which gets SIGTERM)."""
        self.stop_requested = True
        self._stopping.set()
        if not self.alive or not self.connected.is_set():
            return False
        # a stop for a restart: its end-of-stream ends its generation, not its stream; the
        # whole run's: no receiver of it comes back (node_sdk/flush.py)
        stop = channel.Stop(restart=self.restart_requested, everyone=self.run.stop_requested)
        self.run.send_to_node(self, stop)
        return True

    async def terminate(self, grace: float, told: bool = False) -> None:
        """STOP (unless `told`), grace, SIGTERM to the group, grace / 2, SIGKILL (SPEC 5); a
        node not connected (a process node, `connects: false`, or one that has not
        connected yet: a STOP would reach no one) gets SIGTERM at once, the whole grace."""
        unreachable = not self.connected.is_set()  # no STOP can reach it
        if told or self.tell_stop():
            with trio.move_on_after(grace):
                await self.exited.wait()
        elif not self.alive:
            return
        if not self.exited.is_set():
            if not unreachable:
                log.info("run %s: node %s: SIGTERM after %.1fs", self.run.id, self.id, grace)
            self.run.signal_node(self, signal.SIGTERM)
            with trio.move_on_after(grace if unreachable else grace / 2):
                await self.exited.wait()
        if not self.exited.is_set():
            log.warning("run %s: node %s ignored SIGTERM: SIGKILL", self.run.id, self.id)
            self.killed = True
            self.run.signal_node(self, signal.SIGKILL)
            with trio.move_on_after(KILL_WAIT_S):
                await self.exited.wait()

    def _record_exit(self) -> None:
        code = self.exit_code
        signal_name = signal.Signals(-code).name if code is not None and code < 0 else None
        status = exit_status(code, lost=self.lost, stopped=self.stop_requested,
                             interrupted=self.run.interrupted, killed=self.killed)  # fmt: skip
        tail = self.stderr_tail if status in KEEPS_TAIL else []
        if self.kill_cause is not None and status is NodeStatus.FAILED:
            tail = [*tail, self.kill_cause]
        # held: written with the restart decision `serve` takes next, without an await
        self.transition(status, hold=True, exit_code=code, signal=signal_name, stderr_tail=tail)
        self.run.record_event(self.id, "exit", f"{self.status} code {code}")
        log.info("run %s: node %s %s (exit %s)", self.run.id, self.id, self.status, code)
