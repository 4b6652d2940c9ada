"""A run's live state and what its slots and handlers may ask of it (`lifecycle` drives it)."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio
import zmq

from daemon.keeper.logs import Tee
from daemon.model import routing
from daemon.model.descriptor import Dataflow, OutputRef
from daemon.model.errors import StateWriteFailed
from daemon.model.graph import downstream
from daemon.model.keeper_messages import (
    Degraded,
    Exited,
    FromKeeper,
    Release,
    Signal,
    Spawned,
    SpawnFailed,
    StdoutStats,
    UnwireStdout,
)
from daemon.model.result import RunEnding, run_result
from daemon.model.settings import current as settings
from daemon.model.states import NodeStatus, RunStatus
from daemon.run.connect_wait import ended_unconnected
from daemon.run.keeper_link import KeeperPort
from daemon.run.placement import PlacedRun
from daemon.run.receiver_word import tell_late_sender, tell_senders
from daemon.run.restarts import next_delay
from daemon.run.slot import NodeSlot
from daemon.run.spawn_request import spawn_request, stdout_wire
from daemon.run.stdout_stats import merge_stdout_stats
from daemon.run.unsaved import Unsaved
from daemon.store import Store
from node_sdk import channel, paths
from node_sdk.config import Edge as WireEdge

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 10.0
EOS_BACKSTOP_S = 2.0  # after a clean exit: for an end-of-stream that will never come
# quit makes the keeper SIGTERM what is left, then SIGKILL after 5 s: it is gone by then
KEEPER_EXIT_S = 10.0

SendToNode = Callable[[bytes, channel.Message], bool]  # False: not queued


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
    in_process: bool = False  # `flow run`: the keeper is a thread, not a process
    status: RunStatus = RunStatus.STARTING
    stop_requested: bool = False
    interrupted: bool = False  # stopped because the daemon got a signal: recover later
    cancel_grace: float = 2.0  # when the daemon itself is going down hard
    error: str | None = None
    degraded: str | None = None
    _degraded_causes: dict[str, str] = attrs.field(factory=dict)  # area -> its latest cause
    _degraded_warned: set[str] = attrs.field(factory=set)
    released: bool = False
    late: list[str] = attrs.field(factory=list)  # nodes that missed the start barrier
    slots: dict[str, NodeSlot] = attrs.field(factory=dict)
    removed: set[str] = attrs.field(factory=set)  # `flow node remove`d: their slots stay, unseen
    keeper: KeeperPort | None = None
    keeper_lost: str | None = None  # why the keeper is gone, once it is (the run fails)
    live_edges: list[tuple[str, channel.Wire]] = attrs.field(factory=list)  # (sender, wire)
    unheard: set[str] = attrs.field(factory=set)  # adopted nodes not heard from yet: below
    edits: list[dict[str, Any]] = attrs.field(factory=list)  # its graph edits' journal
    unsaved: Unsaved = attrs.field(factory=Unsaved)  # what the store could not take yet
    nursery: trio.Nursery | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    placed: PlacedRun | None = None  # nodes on other machines (daemon/run/placement.py)
    record: str | None = None  # `--record PATH`: recorded from its start (run/recording.py)
    recordings: list[Any] = attrs.field(factory=list)  # recording.Recording, live and ended
    _endpoints: dict[tuple[str, str], str] = attrs.field(factory=dict)
    _added_inputs: int = 0  # endpoints made for inputs added while the run goes on

    def __attrs_post_init__(self) -> None:
        placement = self.placed.placement if self.placed is not None else None
        self._endpoints = routing.input_endpoints(self.dataflow, self.sockets, placement)
        if self.placed is not None:
            self.send = self.placed.router(self.send)  # over the link to other machines
        for spec in self.dataflow.nodes:
            status = NodeStatus.DYNAMIC if spec.is_dynamic else NodeStatus.PENDING
            self.slots[spec.id] = NodeSlot(spec=spec, run=self, status=status)

    @property
    def run_dir(self) -> Path:
        return paths.run_dir(self.home, self.id)

    @property
    def log_dir(self) -> Path:
        return paths.log_dir(self.home, self.id)

    @property
    def descriptor_copy(self) -> Path:
        return paths.dataflow_copy(self.home, self.id)

    @property
    def keeper_endpoint(self) -> str:
        in_process = f"inproc://keeper-{self.id}"
        return in_process if self.in_process else f"ipc://{self.sockets / 'keeper'}"

    def visible_ids(self) -> list[str]:
        """The ids of its nodes a user can name (not those `flow node remove` took out)."""
        return [node for node in self.slots if node not in self.removed]

    @property
    def spawned(self) -> list[NodeSlot]:
        return [s for s in self.slots.values() if not s.spec.is_dynamic]

    # ---------------------------------------------------------------- node operations

    def config_of(self, slot: NodeSlot) -> dict[str, Any]:
        """The slot's current generation's FLOW_NODE_CONFIG."""
        return routing.node_config(
            self.dataflow,
            slot.spec,
            run_id=self.id,
            run_name=self.name,
            generation=slot.generation,
            restarts=slot.restarts,
            daemon_endpoint=self.daemon_endpoint,
            descriptor_copy=self.descriptor_copy,
            endpoints=self._endpoints,
            settings=settings(),
            placement=self.placed.placement if self.placed is not None else None,
        )

    def spawn(self, slot: NodeSlot) -> None:
        """Ask the keeper to start the slot's current generation."""
        assert self.keeper is not None
        self.keeper.send(spawn_request(self, slot, self.config_of(slot), self._endpoints))

    def signal_node(self, slot: NodeSlot, sig: signal.Signals) -> None:
        if self.keeper is not None:
            self.keeper.send(Signal(node=slot.id, sig=int(sig)))

    def send_to_node(self, slot: NodeSlot, message: channel.Message) -> None:
        if slot.connected.is_set() and not self.send(slot.identity(), message):
            # never silent: a lost `stop` is made up for by SIGTERM after the grace
            kind = channel.to_json(message)["t"]
            log.error("run %s: node %s: %s not sent", self.id, slot.id, kind)
            self.mark_degraded(f"node channel: a {kind} to {slot.id} was lost")

    def input_endpoint(self, node: str, input_id: str) -> str:
        return self._endpoints[(node, input_id)]

    def new_input_endpoint(self, node: str, input_id: str, given: str | None = None) -> str:
        """An endpoint for an input added while the run goes on (never reused); `given`:
        the one it had before a crash (recovery makes the edits again with theirs)."""
        # numbered by a count of its own: the map's size stays the same when an input
        # connected again replaces its entry, and a name given twice is one socket for two
        if given is None:
            self._added_inputs += 1
            given = f"ipc://{self.sockets / f'x{self._added_inputs}'}"
        self.reserve_endpoint(given)
        self._endpoints[(node, input_id)] = given
        return given

    def reserve_endpoint(self, endpoint: str) -> None:
        """Never make an endpoint of `endpoint`'s number again (one made before a crash)."""
        number = endpoint.rpartition("/x")[2]
        if number.isdigit():
            self._added_inputs = max(self._added_inputs, int(number))

    def start_slot(self, slot: NodeSlot) -> None:
        """Spawn a node added to the running graph, with its closing watch."""
        assert self.nursery is not None
        self.slots[slot.id] = slot
        self.nursery.start_soon(slot.serve)
        self.nursery.start_soon(self.watch_slot, slot)

    async def watch_slot(self, slot: NodeSlot) -> None:
        """Close the inputs a slot fed once it finished for good."""
        await slot.finished.wait()
        self.node_finished(slot)

    # ------------------------------------------------------- what a slot asks (SlotHost)

    def record_node(self, node_id: str, fields: dict[str, Any]) -> None:
        try:
            self.unsaved.write_node(self.store, self.id, node_id, fields)
        except StateWriteFailed as exc:  # recording is auxiliary (SPEC 7.3): held for later
            self.mark_degraded(f"state store: {exc}")

    def record_event(self, node_id: str, kind: str, detail: str) -> None:
        try:
            self.store.add_event(self.id, node_id, kind, detail)
        except StateWriteFailed as exc:
            self.mark_degraded(f"state store: {exc}")

    def record_run(self, **fields: Any) -> None:
        try:
            self.unsaved.write_run(self.store, self.id, fields)
        except StateWriteFailed as exc:
            self.mark_degraded(f"state store: {exc}")

    def node_connected(self, slot: NodeSlot) -> None:
        if self.released or slot.spec.is_dynamic:
            # joining after the barrier (a restart, an attach): released at once, and told
            # which upstreams ended for good (what they delivered is read first: inbox.py)
            for upstream in [s for s in self.slots.values() if s.finished.is_set()]:
                self._close_downstream(upstream, at_end=True, only=slot.id)
                self._close_downstream(upstream, at_end=False, only=slot.id)
            self.release(slot)
            tell_late_sender(self, slot)  # which of its receivers are down (flush.py)

    def receiver_down(self, slot: NodeSlot, *, restarting: bool) -> None:
        tell_senders(self, slot, restarting=restarting)

    def node_detached(self, slot: NodeSlot) -> None:
        for spec in slot.spec.inputs:
            if isinstance(spec.source, OutputRef):
                self.remove_live_edge(self.input_endpoint(slot.id, spec.id))

    # -------------------------------------------------------- live edges (not in configs)

    def add_live_edge(self, sender: str, output: str, edge: WireEdge) -> None:
        """An edge to a dynamic node or an observer: wired now and after every restart."""
        wire = channel.Wire(output, edge)
        self.live_edges.append((sender, wire))
        self.wire_sender(self.slots[sender], wire)

    def remove_live_edge(self, endpoint: str) -> None:
        for sender, wire in [e for e in self.live_edges if e[1].edge.endpoint == endpoint]:
            self.live_edges.remove((sender, wire))
            self.unwire_sender(self.slots[sender], channel.Unwire(wire.output, endpoint))

    def wire_sender(self, slot: NodeSlot, wire: channel.Wire) -> None:
        """An edge more for a running sender: told to the node, or for a process node to
        its keeper, which sends its lines (a later spawn has it among its edges)."""
        if slot.spec.connects:
            self.send_to_node(slot, wire)
        elif self.keeper is not None:
            self.keeper.send(stdout_wire(self, slot, wire.edge))

    def unwire_sender(self, slot: NodeSlot, unwire: channel.Unwire) -> None:
        if slot.spec.connects:
            self.send_to_node(slot, unwire)
        elif self.keeper is not None:
            self.keeper.send(UnwireStdout(slot.id, unwire.endpoint))

    def release(self, slot: NodeSlot) -> None:
        """Let a node go: `start` (if connected), its held stdout lines, the live edges its
        config lacks."""
        # live edges first: a node applies the wiring that came before `start` before its
        # first send, so a recorder wired from the start misses nothing
        self._wire_live_edges(slot)
        self.send_to_node(slot, channel.Start())
        if slot.spec.send_stdout_as is not None and self.keeper is not None:
            self.keeper.send(Release(slot.id, slot.generation))

    def heard_from(self, slot: NodeSlot) -> None:
        """A node said something on the node channel. An adopted node's DEALER connects to
        this daemon by itself, and what was sent to it before that was dropped (a recorder's
        edge, an observer's): its live edges go again now (a node ignores one it has)."""
        if slot.id in self.unheard:
            self.unheard.discard(slot.id)
            self._wire_live_edges(slot)

    def _wire_live_edges(self, slot: NodeSlot) -> None:
        for sender, wire in self.live_edges:
            if sender == slot.id:
                self.send_to_node(slot, wire)

    def on_keeper_event(self, message: FromKeeper) -> None:
        if isinstance(message, Degraded):
            lines = "line" if message.dropped == 1 else "lines"
            lost = f" ({message.dropped} log {lines} dropped)" if message.dropped else ""
            self.mark_degraded(f"{message.what or 'side work'}{lost}")
        elif isinstance(message, StdoutStats):
            merge_stdout_stats(self.slots, message)
        elif isinstance(message, Spawned | SpawnFailed | Exited):
            slot = self.slots.get(message.node)
            if slot is not None:
                slot.on_keeper_event(message)

    def restart_delay(self, slot: NodeSlot) -> float | None:
        """Seconds until the slot's next generation, or None: no more (SPEC 2, 5)."""
        return next_delay(self.id, slot, self.slots, run_stopping=self.stop_requested)

    def mark_degraded(self, what: str) -> None:
        """One line per cause (`logs: ...`, `state store: ...`): a later cause (a log line
        count going up each tick) never hides an earlier one."""
        area, _, cause = what.partition(": ")
        if self._degraded_causes.get(area) != cause:
            self._degraded_causes[area] = cause
            self.degraded = "; ".join(
                f"{k}: {v}" if v else k for k, v in self._degraded_causes.items()
            )
            # a warning once per area; its later causes (a count going up) at debug level
            level = logging.WARNING if area not in self._degraded_warned else logging.DEBUG
            self._degraded_warned.add(area)
            log.log(level, "run %s degraded: %s", self.id, what)
            try:
                self.unsaved.write_run(self.store, self.id, {"degraded": self.degraded})
            except StateWriteFailed as exc:  # recording the degradation is itself auxiliary
                # the store failing is already a cause above, or becomes one at its next write
                log.debug("could not record degradation of run %s: %s", self.id, exc)

    def set_status(self, status: RunStatus, *, error: str | None = None) -> None:
        self.status = status
        fields: dict[str, Any] = {"status": str(status)}
        if error is not None:
            self.error = error
            fields["error"] = error
        if not status.active:
            fields["ended"] = time.time()
        self.record_run(**fields)
        log.info("run %s: %s%s", self.id, status, f" ({error})" if error else "")

    async def stop(self, grace: float) -> None:
        """Stop every live node with the STOP, SIGTERM, SIGKILL sequence, in parallel."""
        self.stop_requested = True
        for slot in self.slots.values():
            if slot.attached:  # a dynamic node's process is not ours to signal: STOP only
                self.send_to_node(slot, channel.Stop(everyone=True))
        # every STOP out before a node can act on its own (receivers first): a node that
        # ends at once must not close its receivers' inputs ahead of their own STOP
        told = {slot.id for slot in reversed(self.spawned) if slot.tell_stop()}
        async with trio.open_nursery() as nursery:
            for slot in self.spawned:
                nursery.start_soon(slot.terminate, grace, slot.id in told)

    def node_finished(self, slot: NodeSlot) -> None:
        """Close the inputs fed by a finished node (SPEC 5). An output whose end-of-stream
        was sent (the node said goodbye or exited 0, or the keeper ended its
        `send_stdout_as` output at its exit) may have ended only its generation (a
        restartable node's does): its receivers are told now that this generation was its
        last, and close once that end-of-stream is in, after the data before it. That can
        still be lost, so the inputs are closed once more, later: a receiver still waiting
        for it closes the source once its socket is read empty (node_sdk/inbox.py). Its
        senders stop waiting for it."""
        self.receiver_down(slot, restarting=False)
        if (unconnected := ended_unconnected(slot)) is not None:
            self.mark_degraded(unconnected)
        if not self.released:
            return
        if self._close_downstream(slot, at_end=True) and self.nursery is not None:
            self.nursery.start_soon(self._close_downstream_later, slot)

    async def _close_downstream_later(self, slot: NodeSlot) -> None:
        await trio.sleep(EOS_BACKSTOP_S)
        self._close_downstream(slot, at_end=False)

    def _close_downstream(self, slot: NodeSlot, *, at_end: bool, only: str | None = None) -> bool:
        """`upstream_done` to every input `slot` feeds (node `only`'s): at once, or (`at_end`)
        after the end-of-stream of its last generation if one was sent. True if any waits."""
        waits = False
        # a clean exit whose bye is not read yet (the keeper's report of the exit comes on
        # another socket) ended its stream too: its receivers read it to the end
        clean = slot.said_bye or slot.exit_code == 0
        for edge in downstream(self.dataflow, slot.id):
            if only is not None and edge.target != only:
                continue
            target = self.slots[edge.target]
            source = f"{slot.id}/{edge.output}"
            by_eos = at_end and (clean or edge.output == slot.spec.send_stdout_as)
            waits = waits or by_eos
            generation = slot.generation if by_eos else 0
            self.send_to_node(target, channel.UpstreamDone(edge.input, source, generation))
        return waits

    def result_status(self) -> RunStatus:
        lost = self.keeper_lost is not None
        ending = RunEnding(self.stop_requested, self.interrupted, lost, bool(self.late))
        return run_result((s.status for s in self.spawned), ending)

    def info(self) -> dict[str, Any]:
        """The run as stored, with what the store has not taken yet (a full disk)."""
        data = self.store.run(self.id)
        assert data is not None
        return self.unsaved.over(data)
