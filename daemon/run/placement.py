"""A run placed on several machines, as its supervisor sees it (docs/cluster.md, "Placement").

The coordinator supervises every node of such a run as it does a local one: its slots, start
barrier, stop sequence and result are the same code. What differs is only the way there: a
node on a member machine is spawned and signalled by the member's own keeper, whose channel
is relayed over the cluster link (`RemoteKeeper`), and its node-channel frames (hello, bye,
stats; start, stop, upstream_done) are relayed both ways too. `PlacedKeeper` puts the
machines' keepers behind the one `KeeperPort` a run has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

import attrs
import trio

from daemon.model import keeper_messages as km
from daemon.model.cluster_messages import Carry
from daemon.model.descriptor import Dataflow
from daemon.model.errors import NodeSpawnFailed, RecoverableError
from daemon.model.routing import MachinePlace, Placement
from daemon.run.keeper_link import ATTACH_ANSWER_S, KeeperPort
from node_sdk import channel

log = logging.getLogger(__name__)

REMOTE_ATTACH_S = 10.0  # a member's keeper starts as a process: as long as a local attach
# a placed run's placement, in its run folder: a restarted coordinator re-adopts it from there
PLACEMENT_FILE: Final = "placement.json"


class Relay(Protocol):
    """What the coordinator's cluster link offers a placed run."""

    def send_carry(self, machine: str, carry: Carry) -> bool:
        """Queue a relayed message for a connected machine; False when it cannot be."""


class Placer(Protocol):
    """The coordinator's side of placement, as a runtime uses it."""

    @property
    def here(self) -> str:
        """The coordinator's machine name."""

    def machines(self) -> frozenset[str]:
        """The machine names a dataflow may place nodes on."""

    async def place(self, run_id: str, dataflow: Dataflow) -> PlacedRun | None:
        """The run's placement, None when every node runs here; `BadRequest`, in one line,
        when a node is placed on a machine that is not connected."""

    def forget(self, run_id: str) -> None:
        """The run has ended: drop what relays its messages."""

    async def log_copy(self, run_id: str, machine: str, node_id: str, *, follow: bool) -> str:
        """The path of a local copy of a node's log on another machine: its tail fetched
        now, or, with `follow`, kept growing while followers keep asking."""

    def readopt(self, run_id: str, placement: Placement, states: dict[str, km.State]) -> PlacedRun:
        """A run placed before this daemon restarted, taken over again: each member's
        nodes as the store last saw them (`states`, by machine) until it reports."""

    def watch_readopted(self, run_id: str) -> None:
        """Its members not connected (yet): their nodes `lost` until back, within the grace."""

    def recovered(self) -> None:
        """Recovery is over: what members said of runs unknown until now is answered."""


@attrs.define(eq=False)
class RemoteKeeper:
    """The keeper of one run on one member machine, reached over the cluster link."""

    machine: str
    run_id: str
    relay: Relay
    on_event: Callable[[km.FromKeeper], None] = lambda message: None
    state: km.State | None = None
    attached: trio.Event = attrs.field(factory=trio.Event)

    def send(self, message: km.ToKeeper) -> None:
        body = km.encode(message).decode()
        if not self.relay.send_carry(self.machine, Carry(self.run_id, "keeper", body)):
            # the machine is not connected (lost, or it left): it stops what it hosts by
            # itself past its cluster_grace, so this is said, not an error
            log.warning("run %s: a %s for machine %s's keeper was not sent: the machine is "
                        "not connected", self.run_id, type(message).__name__,
                        self.machine)  # fmt: skip

    def deliver(self, body: str) -> None:
        """A keeper message relayed back by the member (decoded by the keeper's decoder)."""
        try:
            message = km.decode(body.encode())
        except km.KeeperMessageError as exc:
            log.warning("run %s: dropped a keeper message from %s: %s", self.run_id,
                        self.machine, exc)  # fmt: skip
            return
        if not isinstance(message, km.FromKeeper):
            return
        if isinstance(message, km.State):
            # a State after the first: the member's report once its link is back (a
            # restarted coordinator, a healed partition); what ended meanwhile is applied
            # (an exit the slot has seen already changes nothing, and one of a generation
            # it has left behind is ignored)
            report = self.state is not None
            self.state = message
            self.attached.set()
            for node, state in message.nodes.items() if report else ():
                if not state.alive:
                    self.on_event(km.Exited(node, state.generation, state.code, state.tail))
        self.on_event(message)

    async def serve(self) -> None:
        # the member's daemon watches its keeper; the machine's own liveness is the link's
        await trio.sleep_forever()

    async def attach(self) -> km.State:
        """Ask until the member's keeper answers (the member starts it on the first ask)."""
        with trio.move_on_after(REMOTE_ATTACH_S):
            while self.state is None:
                self.send(km.Attach())
                with trio.move_on_after(ATTACH_ANSWER_S * 4):
                    await self.attached.wait()
        if self.state is None:
            raise NodeSpawnFailed(
                "keeper", f"the run keeper on machine {self.machine} did not answer"
            )
        return self.state

    def quit(self) -> None:
        self.send(km.Quit())


@attrs.define(eq=False)
class PlacedKeeper:
    """The keepers of every machine of a run behind one `KeeperPort`, by node."""

    local: KeeperPort
    remotes: dict[str, RemoteKeeper]
    machine_of: dict[str, str]

    def send(self, message: km.ToKeeper) -> None:
        machine = self.machine_of.get(getattr(message, "node", ""), "")
        remote = self.remotes.get(machine)
        (remote or self.local).send(message)

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.local.serve)
            for remote in self.remotes.values():
                nursery.start_soon(remote.serve)

    async def attach(self) -> km.State:
        state = await self.local.attach()
        nodes = dict(state.nodes)
        for remote in self.remotes.values():
            nodes.update((await remote.attach()).nodes)
        return km.State(nodes=nodes, degraded=state.degraded)

    def quit(self) -> None:
        for remote in self.remotes.values():
            remote.quit()
        self.local.quit()


@attrs.define(eq=False)
class PlacedRun:
    """One run's placement and its relays, kept by the coordinator while the run lives."""

    run_id: str
    here: str  # the coordinator's machine name
    placement: Placement
    relay: Relay
    remotes: dict[str, RemoteKeeper]
    # the coordinator's node channel, which takes a relayed frame as if the node sent it
    node_frames: Callable[[list[bytes]], None]

    def is_remote(self, node_id: str) -> bool:
        return self.placement.machine_of.get(node_id, self.here) != self.here

    def keeper(self, local: KeeperPort, on_event: Callable[[km.FromKeeper], None]) -> PlacedKeeper:
        for remote in self.remotes.values():
            remote.on_event = on_event
        return PlacedKeeper(local, self.remotes, self.placement.machine_of)

    def router(
        self, local: Callable[[bytes, channel.Message], bool]
    ) -> Callable[[bytes, channel.Message], bool]:
        """The run's node-channel send: over the link to a node on a member machine."""

        def send(identity: bytes, message: channel.Message) -> bool:
            node_id = identity.decode().split("/")[1]
            machine = self.placement.machine_of.get(node_id, self.here)
            if machine == self.here:
                return local(identity, message)
            body = channel.encode(message).decode()
            carry = Carry(self.run_id, "node", body, identity.decode())
            return self.relay.send_carry(machine, carry)

        return send

    def deliver(self, machine: str, carry: Carry) -> None:
        """A relayed message from `machine`; a member speaks only for its own nodes."""
        if carry.kind == "keeper" and machine in self.remotes:
            self.remotes[machine].deliver(carry.body)
        elif carry.kind == "node":
            parts = carry.ident.split("/")
            if len(parts) == 3 and parts[0] == self.run_id and (
                self.placement.machine_of.get(parts[1]) == machine
            ):
                self.node_frames([carry.ident.encode(), carry.body.encode()])
            else:
                log.warning("run %s: machine %s relayed a frame of node %r, not one of its own",
                            self.run_id, machine, carry.ident[:80])  # fmt: skip


def placement_text(placement: Placement) -> str:
    """The placement as JSON, for its run folder (PLACEMENT_FILE)."""
    return json.dumps({
        "machine_of": placement.machine_of,
        "machines": {name: [m.host, m.public_key] for name, m in placement.machines.items()},
        "ports": [[node, put, port] for (node, put), port in placement.ports.items()],
        "secret_file": placement.secret_file,
        "timing": [placement.heartbeat_s, placement.timeout_s, placement.grace_s],
    })  # fmt: skip


def read_placement(run_dir: Path) -> Placement:
    """The placement a run was started with; RecoverableError naming the file if unusable."""
    path = run_dir / PLACEMENT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        heartbeat, timeout, grace = (float(v) for v in data["timing"])
        return Placement(
            machine_of={str(k): str(v) for k, v in data["machine_of"].items()},
            machines={str(k): MachinePlace(str(h), str(key))
                      for k, (h, key) in data["machines"].items()},
            ports={(str(n), str(i)): int(p) for n, i, p in data["ports"]},
            secret_file=str(data["secret_file"]),
            heartbeat_s=heartbeat, timeout_s=timeout, grace_s=grace,
        )  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RecoverableError(f"its placement {path} cannot be read ({exc})") from None
