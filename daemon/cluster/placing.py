"""The coordinator's placement: which machine runs each node, refusals, tcp:// ports and keys.

A node runs on its `deploy.machine` when that is an admitted member; every other node runs
here. A start naming a member that is not connected is refused in one line. Each input fed
from another machine gets a tcp:// port reserved on its own machine (a member is asked for
free ones over the link) and its senders that machine's key (docs/cluster.md, "Placement").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio

from daemon.cluster.coordinator import CONNECTED, LEFT, LOST, Coordinator
from daemon.cluster.keys import secret_key_file
from daemon.cluster.link import free_ports
from daemon.cluster.loss import left_machine, live_on, lose_for_good, lost_machine
from daemon.cluster.remote_logs import RemoteLogs
from daemon.cluster.remote_watch import RemoteWatch
from daemon.model.cluster_messages import Carry
from daemon.model.descriptor import Dataflow
from daemon.model.errors import BadRequest
from daemon.model.keeper_messages import Quit, State, encode
from daemon.model.routing import MachinePlace, Placement, place_nodes
from daemon.model.settings import current as settings
from daemon.run.placement import PlacedRun, RemoteKeeper
from daemon.run.supervisor import Run

log = logging.getLogger(__name__)

PORTS_ANSWER_S: Final = 5.0
WILDCARDS: Final = frozenset({"*", "0.0.0.0", "[::]"})
HELD: Final = 10_000  # relayed messages of runs not known yet, kept while recovery runs


def refuse_unreachable(coordinator: Coordinator, what: str) -> None:
    """BadRequest when other machines cannot be reached safely from this coordinator: it
    listens on plain TCP, or on every address (no one address to give members)."""
    if coordinator.listen.plain:
        raise BadRequest(f"{what} need CURVE: this coordinator listens on plain TCP "
                         "(--insecure-loopback)")  # fmt: skip
    if coordinator.listen.host in WILDCARDS:
        raise BadRequest(f"{what} need the coordinator to listen on one address "
                         "(--listen tcp://ADDR:PORT)")  # fmt: skip


@attrs.define(eq=False)
class ClusterPlacer:
    """The `Placer` of a coordinator (daemon/run/placement.py)."""

    coordinator: Coordinator
    home: Path
    node_frames: Callable[[list[bytes]], None]
    find_run: Callable[[str], Run | None]
    nursery: trio.Nursery  # the loss watches (daemon/cluster/loss.py) run here
    runs: dict[str, PlacedRun] = attrs.field(factory=dict)
    # observers and usage of nodes placed on members (set by daemon/cluster/start.py)
    watch: RemoteWatch | None = None
    _lost: dict[tuple[str, str], trio.Event] = attrs.field(factory=dict)  # set: it is back
    logs: RemoteLogs = attrs.field(init=False)  # remote nodes' log copies (`flow logs`)
    _ports: dict[tuple[str, str], trio.MemorySendChannel[str]] = attrs.field(factory=dict)
    # until the daemon's recovery is over, a member's word on a run not re-adopted yet is
    # kept, not answered: "stop it" would stop nodes that are about to be re-adopted
    recovering: bool = True
    _held: list[tuple[str, Carry]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.logs = RemoteLogs(self.home, self.send_carry)

    @property
    def here(self) -> str:
        return self.coordinator.name

    def machines(self) -> frozenset[str]:
        return frozenset({self.coordinator.name, *self.coordinator.peers})

    def send_carry(self, machine: str, carry: Carry) -> bool:
        peer = self.coordinator.peers.get(machine)
        if peer is None or peer.routing_id is None or peer.state != CONNECTED:
            return False
        self.coordinator.send(peer.routing_id, carry)
        return True

    async def place(self, run_id: str, dataflow: Dataflow) -> PlacedRun | None:
        here, peers = self.coordinator.name, self.coordinator.peers
        machine_of = place_nodes(dataflow, here, peers)
        if all(m == here for m in machine_of.values()):
            return None  # a local run: nothing of this module is involved
        self._refuse_unplaceable(dataflow, machine_of)
        machines = {here: MachinePlace(self.coordinator.listen.host, self.coordinator.keys.public)}
        for name in set(machine_of.values()) - {here}:
            peer = peers[name]
            machines[name] = MachinePlace(peer.address or "", peer.public_key)
        timing = self.coordinator.timing
        placement = Placement(machine_of, machines, {}, str(secret_key_file(self.home,
                              self.coordinator.keys)), timing.heartbeat, timing.lost_after,
                              settings().cluster_grace)  # fmt: skip
        crossing = placement.crossing(dataflow)
        ports: dict[tuple[str, str], int] = {}
        for name in machines:
            wanted = [pair for pair in crossing if machine_of[pair[0]] == name]
            if wanted:
                got = await self._reserve(run_id, name, len(wanted))
                ports.update(zip(wanted, got, strict=True))
        placement = attrs.evolve(placement, ports=ports)
        remotes = {
            name: RemoteKeeper(name, run_id, self) for name in machines if name != here
        }  # fmt: skip
        placed = PlacedRun(run_id, here, placement, self, remotes, self.node_frames)
        self.runs[run_id] = placed
        log.info("run %s placed: %s", run_id, ", ".join(
            f"{node}@{machine}" for node, machine in sorted(machine_of.items())))  # fmt: skip
        return placed

    def _refuse_unplaceable(self, dataflow: Dataflow, machine_of: dict[str, str]) -> None:
        """One line for the first node that cannot run where it is placed."""
        here, peers = self.coordinator.name, self.coordinator.peers
        refuse_unreachable(self.coordinator, "nodes placed on other machines")
        for node in dataflow.nodes:
            machine = machine_of[node.id]
            if machine == here:
                continue
            peer = peers[machine]
            if peer.state != CONNECTED or not peer.address:
                raise BadRequest(f"node {node.id}: machine {machine} is {peer.state}, not "
                                 "connected (flow cluster status)")  # fmt: skip

    async def _reserve(self, run_id: str, machine: str, count: int) -> list[int]:
        if machine == self.coordinator.name:
            return free_ports(self.coordinator.listen.host, count)
        send, receive = trio.open_memory_channel[str](1)
        self._ports[(run_id, machine)] = send
        try:
            if not self.send_carry(machine, Carry(run_id, "ports", str(count))):
                raise BadRequest(f"machine {machine} is not connected (flow cluster status)")
            with trio.move_on_after(PORTS_ANSWER_S):
                answer = await receive.receive()
                ports = [int(p) for p in answer.split() if p.isdigit() and len(p) <= 5]
                if len(ports) == count and all(0 < p < 65536 for p in ports):
                    return ports
                raise BadRequest(f"machine {machine} gave no free tcp ports: {answer[:80]!r}")
            raise BadRequest(f"machine {machine} did not answer within {PORTS_ANSWER_S:g} s")
        finally:
            del self._ports[(run_id, machine)]

    def on_carry(self, machine: str, carry: Carry) -> None:
        """A relayed message from a member: a ports answer, what it hosts, or a run's."""
        if self.logs.on_carry(machine, carry):
            return
        unknown = carry.kind == "hosted" or (
            carry.kind in ("keeper", "node") and carry.run not in self.runs)  # fmt: skip
        if self.recovering and unknown:
            if len(self._held) < HELD:
                self._held.append((machine, carry))
            return
        if carry.kind == "hosted":
            self._on_hosted(machine, carry.body.split())
            return
        if carry.kind == "ports":
            waiting = self._ports.get((carry.run, machine))
            if waiting is not None:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    waiting.send_nowait(carry.body)
            return
        placed = self.runs.get(carry.run)
        if placed is not None:
            placed.deliver(machine, carry)
        elif carry.kind == "node":
            # a run this coordinator does not supervise (any more: it ended, or the daemon
            # restarted): the member's keeper of it is told to stop its nodes
            self.send_carry(machine, Carry(carry.run, "keeper", encode(Quit()).decode()))

    def _on_hosted(self, machine: str, hosted: list[str]) -> None:
        """A member's report on its welcome: the runs it still hosts for this coordinator.

        A run it hosts that is not supervised here (it ended, or was not re-adopted) is
        stopped there; a supervised run it no longer hosts has lost its nodes there (the
        member stopped them past cluster_grace): they end `lost`, never started again.
        """
        for run_id in sorted(set(hosted[:HELD]) - self.runs.keys()):
            self.send_carry(machine, Carry(run_id, "keeper", encode(Quit()).decode()))
        for run_id, placed in list(self.runs.items()):
            run = self.find_run(run_id)
            if run is None or machine not in placed.remotes or run_id in hosted:
                continue
            gone = live_on(run, placed.placement.machine_of, machine)
            if gone:
                cause = f"machine {machine} no longer runs them (stopped past cluster_grace)"
                log.warning("run %s: %s: nodes %s lost", run_id, cause,
                            ", ".join(s.id for s in gone))  # fmt: skip
                lose_for_good(gone, cause)

    def readopt(self, run_id: str, placement: Placement, states: dict[str, State]) -> PlacedRun:
        """A run placed before this daemon restarted, taken over again (daemon/run/recovery.py)."""
        if self.here not in placement.machines:
            raise BadRequest(f"it was placed by machine {sorted(placement.machines)[0]}, "
                             f"and this daemon coordinates as {self.here}")  # fmt: skip
        remotes: dict[str, RemoteKeeper] = {}
        for name in sorted(set(placement.machines) - {self.here}):
            remotes[name] = RemoteKeeper(name, run_id, self, state=states.get(name, State({})))
            remotes[name].attached.set()  # its report comes when the member is back
        placed = PlacedRun(run_id, self.here, placement, self, remotes, self.node_frames)
        self.runs[run_id] = placed
        return placed

    def watch_readopted(self, run_id: str) -> None:
        placed, run = self.runs.get(run_id), self.find_run(run_id)
        if placed is None or run is None:
            return
        for machine in placed.remotes:
            peer = self.coordinator.peers.get(machine)
            if peer is None or peer.state != CONNECTED:
                self._watch(run, placed, machine, "not back since the coordinator restarted")

    def recovered(self) -> None:
        self.recovering = False
        held, self._held = self._held, []
        for machine, carry in held:
            self.on_carry(machine, carry)

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    async def log_copy(self, run_id: str, machine: str, node_id: str, *, follow: bool) -> str:
        return await self.logs.copy(run_id, machine, node_id, follow=follow)

    def on_state(self, machine: str, state: str) -> None:
        """A machine was lost: its nodes are `lost` for the grace; back: re-adopted. One that
        left (`flow down` there, which stops its nodes) has them lost for good at once."""
        self.logs.on_state(machine, state)
        for run_id, placed in list(self.runs.items()):
            run = self.find_run(run_id)
            if run is None or machine not in placed.remotes:
                continue
            key = (run_id, machine)
            if state == LEFT:
                left_machine(run, placed.placement.machine_of, machine)
            elif state == LOST:
                self._watch(run, placed, machine, "lost")
            elif state == CONNECTED and key in self._lost:
                self._lost.pop(key).set()

    def _watch(self, run: Run, placed: PlacedRun, machine: str, why: str) -> None:
        """`machine`'s nodes of `run` are `lost` until it is back, within the grace."""
        if (run.id, machine) not in self._lost:
            self._lost[(run.id, machine)] = back = trio.Event()
            self.nursery.start_soon(self._watch_lost, run, placed, machine, back, why)

    async def _watch_lost(self, run: Run, placed: PlacedRun, machine: str,
                          back: trio.Event, why: str) -> None:  # fmt: skip
        try:
            await lost_machine(run, placed.placement.machine_of, machine, back, why)
        finally:
            if self._lost.get((run.id, machine)) is back:
                del self._lost[(run.id, machine)]
