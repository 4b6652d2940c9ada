"""Which cluster role this daemon plays, from `serve`'s options and FLOW_HOME/cluster/.

`--listen` makes it the coordinator; a home that joined one (member.json, written by `python
-m daemon join`) makes it a member; otherwise it is a single machine and no TCP socket is
opened at all.
"""

from __future__ import annotations

import attrs
import trio

from daemon.cluster import remote_attach
from daemon.cluster.coordinator import Coordinator
from daemon.cluster.host import Host
from daemon.cluster.host_watch import HostWatch
from daemon.cluster.keys import machine_keys, read_membership
from daemon.cluster.link import Timing
from daemon.cluster.log_forward import LogForwarder
from daemon.cluster.member import CONNECTED, Member
from daemon.cluster.placing import ClusterPlacer
from daemon.cluster.probe_agent import LocalProber, ProbeAgent
from daemon.cluster.remote_watch import RemoteWatch
from daemon.model.cluster import ClusterConfigError, ListenAddress
from daemon.model.cluster_messages import ATTACH_KIND, GONE_KIND, Carry
from daemon.model.errors import ControlSocketUnavailable
from daemon.run.runtime import Runtime


@attrs.frozen
class ClusterOptions:
    """`python -m daemon serve --machine NAME [--listen tcp://ADDR:PORT]`."""

    machine: str | None = None
    listen: ListenAddress | None = None


async def start_cluster(
    root: trio.Nursery, rt: Runtime, options: ClusterOptions
) -> Coordinator | Member | None:
    """Start this daemon's role in `root`; a setup that cannot work is fatal, in one line."""
    try:
        return await _start(root, rt, options)
    except ClusterConfigError as exc:
        raise ControlSocketUnavailable(f"cluster: {exc}") from None


async def _start(
    root: trio.Nursery, rt: Runtime, options: ClusterOptions
) -> Coordinator | Member | None:
    timing = Timing.current()
    if options.listen is not None:
        if options.machine is None:
            raise ClusterConfigError("--listen needs --machine NAME")
        if read_membership(rt.home) is not None:
            raise ClusterConfigError(f"{rt.home} joined another coordinator; it cannot "
                                     "coordinate too (remove its cluster/member.json)")  # fmt: skip
        coordinator = Coordinator(rt.store, options.machine, options.listen,
                                  machine_keys(rt.home), timing)  # fmt: skip
        await root.start(coordinator.serve)
        assert rt.channel is not None
        placer = ClusterPlacer(coordinator, rt.home, rt.channel.on_message, rt.runs.get, root)
        root.start_soon(placer.logs.serve)
        coordinator.on_carry = placer.on_carry
        _watch_remote_nodes(rt, coordinator, placer)
        _attach_from_members(rt, coordinator, placer)
        coordinator.on_state = placer.on_state
        coordinator.node_counts = lambda: live_nodes(rt, coordinator.name)
        rt.placer = placer
        return coordinator
    membership = read_membership(rt.home)
    if membership is None:
        if options.machine is not None:
            raise ClusterConfigError(
                f"machine {options.machine} has not joined a cluster: flow up --machine "
                f"{options.machine} --join TOKEN, or --listen tcp://ADDR:PORT to coordinate"
            )
        return None
    if options.machine is not None and options.machine != membership.name:
        raise ClusterConfigError(f"this home joined as machine {membership.name}, not "
                                 f"{options.machine}")  # fmt: skip
    member = Member(rt.home, membership, machine_keys(rt.home), timing)
    host = Host(rt, member.keys, member.send_carry, lambda: member.link == CONNECTED)
    host.forwarder = LogForwarder(rt.home, membership.name, member.send_carry,
                                  member.has_room)  # fmt: skip
    root.start_soon(host.forwarder.serve)
    member.on_carry = host.on_carry
    member.on_welcome = host.report
    prober = ProbeAgent(LocalProber(rt.home, member.keys, timing), member.send_report)
    member.on_probe = prober.on_request
    root.start_soon(prober.serve)
    assert rt.channel is not None
    rt.channel.relay = host.relay_from_node
    root.start_soon(host.serve)
    _watch_hosted_nodes(root, rt, member, host)
    _attach_through_coordinator(root, rt, member)
    await root.start(member.serve)
    root.start_soon(_say_goodbye_at_shutdown, rt, member)
    return member


def _watch_remote_nodes(rt: Runtime, coordinator: Coordinator, placer: ClusterPlacer) -> None:
    """`flow topic echo|hz` and `flow top` of nodes on members (daemon/cluster/remote_watch.py):
    their messages on the link go to the watch first."""
    watch = placer.watch = RemoteWatch(placer.send_carry, rt.context)
    placed = coordinator.on_carry

    def on_carry(machine: str, carry: Carry) -> None:
        if not watch.on_carry(machine, carry):
            placed(machine, carry)

    coordinator.on_carry = on_carry


def _watch_hosted_nodes(root: trio.Nursery, rt: Runtime, member: Member, host: Host) -> None:
    """The member's side of the same (daemon/cluster/host_watch.py)."""
    watch = HostWatch(rt, host, member.send_carry)
    hosted = member.on_carry

    def on_carry(carry: Carry) -> None:
        if not watch.on_carry(carry):
            hosted(carry)

    member.on_carry = on_carry
    root.start_soon(watch.serve)


def _attach_from_members(rt: Runtime, coordinator: Coordinator, placer: ClusterPlacer) -> None:
    """Dynamic nodes attaching on members (daemon/cluster/remote_attach.py): answered here."""
    others = coordinator.on_carry

    def on_carry(machine: str, carry: Carry) -> None:
        if carry.kind == ATTACH_KIND:
            placer.send_carry(machine, remote_attach.answer(rt, coordinator.name, machine, carry))
        elif carry.kind == GONE_KIND:
            remote_attach.on_gone(rt, machine, carry)
        else:
            others(machine, carry)

    coordinator.on_carry = on_carry


def _attach_through_coordinator(root: trio.Nursery, rt: Runtime, member: Member) -> None:
    """The member's side: an attach no run here has goes to the coordinator."""
    relay = remote_attach.AttachRelay(rt, member.keys, member.send_carry)
    root.start_soon(relay.watch)
    assert rt.channel is not None
    rt.channel.attach_elsewhere = relay.ask
    others = member.on_carry

    def on_carry(carry: Carry) -> None:
        if not relay.on_carry(carry):
            others(carry)

    member.on_carry = on_carry


async def _say_goodbye_at_shutdown(rt: Runtime, member: Member) -> None:
    await rt.shutdown_requested.wait()
    member.leaving = True  # the link's socket sends `Bye` as it closes


def live_nodes(rt: Runtime, here: str) -> dict[str, int]:
    """How many live nodes of this daemon's runs each machine runs (`flow cluster status`)."""
    counts: dict[str, int] = {}
    for run in rt.active_runs():
        for slot in run.spawned:
            if slot.finished.is_set():
                continue
            machine = here if run.placed is None else run.placed.placement.machine_of[slot.id]
            counts[machine] = counts.get(machine, 0) + 1
    return counts
