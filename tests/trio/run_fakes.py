"""Fakes for in-process trio tests of a run: a fake keeper with fake node processes.

The fake keeper stands behind the run's `KeeperPort` (spawn, signal, quit, attach, serve);
its "processes" are trio tasks that say hello through the slot, as the node channel would,
and exit on STOP, SIGTERM or SIGKILL as their `Behaviour` says. Nothing real is spawned, so
`autojump_clock` runs timeouts, graces and backoff without real waiting.
"""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import attrs
import trio
import zmq

from daemon.model.descriptor import parse_dataflow
from daemon.model.errors import KeeperLost, StateWriteFailed
from daemon.model.keeper_messages import (
    Exited,
    FromKeeper,
    Signal,
    Spawn,
    Spawned,
    State,
    ToKeeper,
)
from daemon.run.supervisor import Run
from daemon.store import Store
from node_sdk import channel

NODES = Path(__file__).resolve().parent.parent / "nodes"
# above any pid_max (2**22): killpg on these can only ever say "no such process group"
FAKE_PID = 1 << 23


@attrs.frozen
class Behaviour:
    """How one fake node process acts."""

    hello: bool = True  # says hello once spawned
    hello_after: float = 0.01  # this long after its spawn
    exit_after: float | None = None  # ends by itself this long after its spawn
    code: int = 0  # with this exit code
    obeys_stop: bool = True
    obeys_term: bool = True


@attrs.define(eq=False)
class FakeProcess:
    node: str
    generation: int
    pid: int
    spawned_at: float
    code: int | None = None
    ended: trio.Event = attrs.field(factory=trio.Event)

    def end(self, code: int) -> None:
        if not self.ended.is_set():
            self.code = code
            self.ended.set()


Inbox = tuple[trio.MemorySendChannel[ToKeeper], trio.MemoryReceiveChannel[ToKeeper]]


@attrs.define(eq=False)
class FakeKeeper:
    """A keeper in memory; `die()` makes it lost as a dead or silent one would be."""

    behaviours: dict[str, Behaviour]
    run: Run | None = None
    processes: list[FakeProcess] = attrs.field(factory=list)
    signals: list[tuple[float, str, signal.Signals]] = attrs.field(factory=list)
    stops: list[tuple[float, str]] = attrs.field(factory=list)
    sent: list[tuple[str, channel.Message]] = attrs.field(factory=list)  # (node, message)
    received: list[ToKeeper] = attrs.field(factory=list)  # what the run sent the keeper
    quit_sent: bool = False
    _lost: trio.Event = attrs.field(factory=trio.Event)
    _inbox: Inbox = attrs.field(factory=lambda: trio.open_memory_channel[ToKeeper](math.inf))

    # ---------------------------------------------------------------- KeeperPort

    def send(self, message: ToKeeper) -> None:
        self.received.append(message)
        self._inbox[0].send_nowait(message)

    async def attach(self) -> State:
        await trio.lowlevel.checkpoint()
        return State(nodes={})

    def quit(self) -> None:
        self.quit_sent = True

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_lost)
            async for message in self._inbox[1]:
                self._handle(message, nursery)

    # ---------------------------------------------------------------- test controls

    def die(self) -> None:
        self._lost.set()

    def live(self, node: str) -> FakeProcess | None:
        found = [p for p in self.processes if p.node == node and not p.ended.is_set()]
        return found[-1] if found else None

    def to_node(self, identity: bytes, message: channel.Message) -> bool:
        """The run's node-channel sends (`Run.send`): STOP reaches the fake process."""
        node = identity.decode().split("/")[1]
        self.sent.append((node, message))
        process = self.live(node)
        if isinstance(message, channel.Stop) and process is not None:
            self.stops.append((trio.current_time(), node))
            if self.behaviours[node].obeys_stop:
                process.end(0)
        return True

    # ---------------------------------------------------------------- inside

    async def _watch_lost(self) -> None:
        await self._lost.wait()
        raise KeeperLost("run keeper lost: the test killed it")

    def _event(self, message: FromKeeper) -> None:
        assert self.run is not None
        self.run.on_keeper_event(message)

    def _handle(self, message: ToKeeper, nursery: trio.Nursery) -> None:
        if isinstance(message, Spawn):
            node, generation = message.node, message.generation
            pid = FAKE_PID + len(self.processes)
            process = FakeProcess(node, generation, pid, trio.current_time())
            self.processes.append(process)
            self._event(Spawned(node, generation, pid))
            nursery.start_soon(self._live_process, process)
        elif isinstance(message, Signal):
            sig = signal.Signals(message.sig)
            node = message.node
            self.signals.append((trio.current_time(), node, sig))
            live = self.live(node)
            if live is not None and (sig is signal.SIGKILL or self.behaviours[node].obeys_term):
                live.end(-int(sig))

    async def _live_process(self, process: FakeProcess) -> None:
        assert self.run is not None
        behaviour = self.behaviours[process.node]
        if behaviour.hello:
            await trio.sleep(behaviour.hello_after)
            slot = self.run.slots[process.node]
            if slot.generation == process.generation:
                slot.hello()
        with trio.move_on_after(
            behaviour.exit_after if behaviour.exit_after is not None else math.inf
        ):
            await process.ended.wait()
        process.end(behaviour.code)
        self._event(Exited(process.node, process.generation, process.code))


@attrs.define(eq=False)
class FlakyStore(Store):
    """The real SQLite store, whose node writes fail while `failing` is set."""

    failing: bool = False
    failures: int = 0

    def update_node(self, run_id: str, node_id: str, **fields: Any) -> None:
        if self.failing:
            self.failures += 1
            raise StateWriteFailed(f"state store {self.path} write failed: disk I/O error")
        super().update_node(run_id, node_id, **fields)


@attrs.define(eq=False)
class RunMaker:
    """Builds a `Run` of a YAML text with a fake keeper, recorded in the real store."""

    tmp_path: Path
    store: FlakyStore
    context: zmq.Context[zmq.Socket[bytes]]

    def __call__(self, yaml_text: str, behaviours: dict[str, Behaviour]) -> tuple[Run, FakeKeeper]:
        path = self.tmp_path / "flow.yml"
        path.write_text(yaml_text.replace("NODES", str(NODES)))
        dataflow = parse_dataflow(path, machines=frozenset({"local"}))
        keeper = FakeKeeper(behaviours)
        run_id = f"0190aaaa-bbbb-7ccc-8ddd-{len(self.store.runs(include_ended=True)):012x}"
        nodes = [(n.id, "pending") for n in dataflow.nodes]
        self.store.create_run(run_id, "test", str(path), nodes, "daemon", {})
        run = Run(
            id=run_id,
            name="test",
            dataflow=dataflow,
            store=self.store,
            home=self.tmp_path / "home",
            sockets=self.tmp_path / "sockets",
            daemon_endpoint="ipc:///nonexistent/nodes",
            send=keeper.to_node,
            context=self.context,
            base_env={},
            extra_env={},
        )
        keeper.run = run
        return run, keeper
