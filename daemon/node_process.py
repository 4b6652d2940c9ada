"""One node process, owned by one task: spawn, capture output, wait, stop (SPEC 5).

The slot records the new generation before it spawns, so that messages and control calls
from an older generation can be refused. The node runs in its own process group; stopping
sends STOP, then SIGTERM to the group after the grace, then SIGKILL after half that again.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
from typing import TYPE_CHECKING

import attrs
import trio

from daemon.descriptor import NodeSpec
from daemon.logformat import record_from_output
from daemon.states import NodeStatus
from daemon.stdout_output import StdoutOutput

if TYPE_CHECKING:
    from daemon.supervisor import Run

log = logging.getLogger(__name__)

STDERR_TAIL = 20
MAX_LINE = 64 * 1024
# After the leader exits, what is left of its group (forked children) gets this long.
GROUP_CLEANUP_S = 1.0
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
    said_bye: bool = False
    stop_requested: bool = False
    killed: bool = False
    process: trio.Process | None = None
    stdout_output: StdoutOutput | None = None
    connected: trio.Event = attrs.field(factory=trio.Event)
    finished: trio.Event = attrs.field(factory=trio.Event)
    settled: trio.Event = attrs.field(factory=trio.Event)  # connected or exited
    stderr_tail: collections.deque[str] = attrs.field(
        factory=lambda: collections.deque(maxlen=STDERR_TAIL)
    )

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def identity(self) -> bytes:
        return f"{self.run.id}/{self.id}/{self.generation}".encode()

    def mark_connected(self) -> None:
        self.connected.set()
        self.settled.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Spawn the node, pump its output, wait for it; stop it if cancelled."""
        try:
            await self._run_once(task_status)
        finally:
            self.settled.set()
            self.finished.set()

    async def _run_once(self, task_status: trio.TaskStatus[None]) -> None:
        run = self.run
        self.generation += 1
        run.store.update_node(run.id, self.id, generation=self.generation, status="pending")
        try:
            argv, env = run.spawn_command(self)
            process = await trio.lowlevel.open_process(
                argv,
                env=env,
                cwd=str(run.dataflow.folder),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._finish_spawn_failure(str(exc))
            task_status.started()
            return
        self.process = process
        self.pid = process.pid
        self.stdout_output = run.open_stdout_output(self)
        self.status = NodeStatus.RUNNING
        run.store.update_node(run.id, self.id, pid=process.pid, status="running")
        run.store.add_event(run.id, self.id, "spawn", f"pid {process.pid} gen {self.generation}")
        task_status.started()
        try:
            async with trio.open_nursery() as pumps:
                assert process.stdout is not None
                assert process.stderr is not None
                drained = (trio.Event(), trio.Event())
                pumps.start_soon(self._pump, process.stdout, "stdout", drained[0])
                pumps.start_soon(self._pump, process.stderr, "stderr", drained[1])
                await process.wait()
                self.settled.set()
                await self._reap_group(pumps, drained)
        finally:
            if process.returncode is None:
                with trio.CancelScope(shield=True):
                    await self.terminate(grace=run.cancel_grace)
            if self.stdout_output is not None:
                self.stdout_output.close()
                self.stdout_output = None
        self._record_exit(process.returncode)

    def _finish_spawn_failure(self, cause: str) -> None:
        self.status = NodeStatus.FAILED
        self.stderr_tail.append(f"could not start: {cause}")
        log.warning("run %s: node %s could not start: %s", self.run.id, self.id, cause)
        self.run.store.update_node(
            self.run.id, self.id, status="failed", stderr_tail=list(self.stderr_tail)
        )

    async def _pump(self, stream: trio.abc.ReceiveStream, name: str, drained: trio.Event) -> None:
        """Read one output stream line by line into the node's log."""
        try:
            await self._pump_lines(stream, name)
        finally:
            drained.set()

    async def _pump_lines(self, stream: trio.abc.ReceiveStream, name: str) -> None:
        pending = b""
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                chunk = b""
            if not chunk:
                if pending:
                    self._line(name, pending)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(name, line)
            while len(pending) > MAX_LINE:  # a huge line without newline: cut it, bounded
                self._line(name, pending[:MAX_LINE])
                pending = pending[MAX_LINE:]

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        record = record_from_output(stream, text)
        if stream == "stderr":
            self.stderr_tail.append(record.message)
        elif self.stdout_output is not None:
            self.stdout_output.send_line(record.message)
        self.run.log_line(self, record)

    async def _reap_group(
        self, pumps: trio.Nursery, drained: tuple[trio.Event, trio.Event]
    ) -> None:
        """Kill what the node left in its process group, then stop reading its pipes."""
        assert self.pid is not None
        if _signal_group(self.pid, signal.SIGTERM):
            with trio.move_on_after(GROUP_CLEANUP_S):
                # no event tells when a process group empties: poll it, bounded
                while _group_exists(self.pid):  # noqa: ASYNC110
                    await trio.sleep(0.02)
            _signal_group(self.pid, signal.SIGKILL)
        with trio.move_on_after(GROUP_CLEANUP_S):
            # the pumps end at EOF once every holder of the pipes is gone
            for event in drained:
                await event.wait()
        pumps.cancel_scope.cancel()

    async def terminate(self, grace: float) -> None:
        """STOP, grace, SIGTERM to the group, grace / 2, SIGKILL (SPEC 5)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.stop_requested = True
        self.run.send_to_node(self, {"t": "stop"})
        with trio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            log.info("run %s: node %s: SIGTERM after %.1fs", self.run.id, self.id, grace)
            _signal_group(process.pid, signal.SIGTERM)
            with trio.move_on_after(grace / 2):
                await process.wait()
        if process.returncode is None:
            log.warning("run %s: node %s ignored SIGTERM: SIGKILL", self.run.id, self.id)
            self.killed = True
            _signal_group(process.pid, signal.SIGKILL)
            with trio.move_on_after(KILL_WAIT_S):
                await process.wait()

    def _record_exit(self, code: int | None) -> None:
        self.exit_code = code
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
        self.run.store.update_node(
            self.run.id,
            self.id,
            status=str(self.status),
            exit_code=code,
            signal=self.signal_name,
            stderr_tail=list(self.stderr_tail) if self.status is NodeStatus.FAILED else [],
        )
        self.run.store.add_event(self.run.id, self.id, "exit", f"{self.status} code {code}")
        log.info("run %s: node %s %s (exit %s)", self.run.id, self.id, self.status, code)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
