"""A node slot alone, behind its narrow `SlotHost` seam: no `Run`, no keeper, no store."""

from __future__ import annotations

import signal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from daemon.model.descriptor import NodeSpec, RestartPolicy
from daemon.model.keeper_messages import Exited, Spawned
from daemon.model.states import NodeStatus
from daemon.run.slot import NodeSlot
from node_sdk import channel


@attrs.define(eq=False)
class Host:
    """Records what the slot asks; spawns answer at once with a pid, nothing ever exits."""

    id: str = "run-1"
    stop_requested: bool = False
    interrupted: bool = False
    cancel_grace: float = 2.0
    records: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    events: list[tuple[str, str]] = attrs.field(factory=list)
    signals: list[tuple[float, signal.Signals]] = attrs.field(factory=list)
    sent: list[channel.Message] = attrs.field(factory=list)
    connected: list[str] = attrs.field(factory=list)
    detached: list[str] = attrs.field(factory=list)
    down: list[tuple[str, bool]] = attrs.field(factory=list)  # (node, restarting)
    restart: float | None = None

    def spawn(self, slot: NodeSlot) -> None:
        slot.on_keeper_event(Spawned(slot.id, slot.generation, 4242))

    def restart_delay(self, slot: NodeSlot) -> float | None:
        delay, self.restart = self.restart, None
        return delay

    def send_to_node(self, slot: NodeSlot, message: channel.Message) -> None:
        self.sent.append(message)

    def signal_node(self, slot: NodeSlot, sig: signal.Signals) -> None:
        self.signals.append((trio.current_time(), sig))
        if sig is signal.SIGKILL:
            slot.on_keeper_event(Exited(slot.id, slot.generation, -9))

    def record_node(self, node_id: str, fields: dict[str, Any]) -> None:
        self.records.append((node_id, dict(fields)))

    def record_event(self, node_id: str, kind: str, detail: str) -> None:
        self.events.append((node_id, kind))

    def node_connected(self, slot: NodeSlot) -> None:
        self.connected.append(slot.id)

    def node_detached(self, slot: NodeSlot) -> None:
        self.detached.append(slot.id)

    def receiver_down(self, slot: NodeSlot, *, restarting: bool) -> None:
        self.down.append((slot.id, restarting))


def spec(node: str = "a", path: str = "a.py") -> NodeSpec:
    return NodeSpec(id=node, name=None, description=None, path=path, executable=None,
                    args=(), env={}, inputs=(), outputs=(), build=(),
                    restart=RestartPolicy(), send_stdout_as=None, machine=None, raw={},
                    line=1)  # fmt: skip


async def test_terminate_escalates_and_every_state_reaches_the_store(
    autojump_clock: trio.testing.MockClock,
) -> None:
    host = Host()
    slot = NodeSlot(spec=spec(), run=host)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slot.serve)
        await slot.first_spawn.wait()
        slot.hello()
        assert host.connected == ["a"]
        began = trio.current_time()
        await slot.terminate(grace=4.0)
        await slot.finished.wait()
    assert host.sent == [channel.Stop()]
    assert [(round(t - began), s) for t, s in host.signals] == [
        (4, signal.SIGTERM),
        (6, signal.SIGKILL),
    ]
    assert slot.status is NodeStatus.KILLED
    statuses = [fields["status"] for _, fields in host.records if "status" in fields]
    assert statuses == ["pending", "running", "killed"]
    assert (host.records[-1][1]["exit_code"], host.records[-1][1]["signal"]) == (-9, "SIGKILL")
    assert [kind for _, kind in host.events] == ["spawn", "exit"]


async def test_a_restart_is_recorded_as_restarting_then_a_new_generation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    host = Host(restart=3.0)
    slot = NodeSlot(spec=spec(), run=host)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slot.serve)
        await slot.first_spawn.wait()
        slot.on_keeper_event(Exited("a", 1, 1, ("boom",)))
        with trio.fail_after(10):
            while slot.status is not NodeStatus.RESTARTING:  # noqa: ASYNC110 (a plain field)
                await trio.sleep(0.1)
        # its end written with the decision, in one write: never `failed` on the way (a
        # daemon killed in between would leave it ended for good: recovery.py)
        assert host.records[-1] == ("a", {"exit_code": 1, "signal": None,
                                          "stderr_tail": ["boom"], "pid": None,
                                          "status": "restarting"})  # fmt: skip
        assert all(fields.get("status") != "failed" for _, fields in host.records)
        assert host.down == [("a", True)]  # its senders are told to wait for it
        with trio.fail_after(10):
            while slot.generation != 2 or slot.status is not NodeStatus.RUNNING:  # noqa: ASYNC110
                await trio.sleep(0.1)
        assert (slot.restarts, slot.pid) == (1, 4242)
        slot.lose_process("run keeper lost: test")
        await slot.finished.wait()
    assert slot.status is NodeStatus.FAILED
    assert slot.stderr_tail[-1] == "run keeper lost: test"


async def test_an_end_no_restart_follows_is_written_when_the_slot_finishes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    host = Host()  # no restart
    slot = NodeSlot(spec=spec(), run=host)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slot.serve)
        await slot.first_spawn.wait()
        slot.on_keeper_event(Exited("a", 1, 3, ("bad",)))
        await slot.finished.wait()
    assert host.records[-1] == ("a", {"status": "failed", "exit_code": 3, "signal": None,
                                      "stderr_tail": ["bad"]})  # fmt: skip
    assert (slot.status, slot.exit_code) == (NodeStatus.FAILED, 3)


async def test_a_dynamic_slot_attaches_and_detaches_through_its_methods() -> None:
    host = Host()
    slot = NodeSlot(spec=spec("d", "dynamic"), run=host, status=NodeStatus.DYNAMIC)
    slot.attach(777)
    assert (slot.attached, slot.generation, slot.pid, slot.status) == (
        True, 1, 777, NodeStatus.RUNNING,
    )  # fmt: skip
    slot.bye()  # a dynamic node that says bye is detached with it
    assert (slot.attached, slot.said_bye, slot.status) == (False, True, NodeStatus.DYNAMIC)
    assert host.detached == ["d"]
    assert host.records == [
        ("d", {"generation": 1, "pid": 777, "status": "running"}),
        ("d", {"pid": None, "status": "dynamic"}),
    ]
    assert [kind for _, kind in host.events] == ["attach", "detach"]


@pytest.mark.parametrize(("whole_run", "ended"),
                         [(False, NodeStatus.STOPPED), (True, NodeStatus.STOPPED)])  # fmt: skip
async def test_a_stop_ends_a_restart_delay_at_once(
    autojump_clock: trio.testing.MockClock, whole_run: bool, ended: NodeStatus
) -> None:
    """A stop of the node alone (`flow node stop`) or of the whole run leaves it `stopped`:
    the failure it was to be restarted from was in its policy's hands (a stop of the run
    left it `failed`, and so failed the run)."""
    host = Host(restart=30.0)
    slot = NodeSlot(spec=spec(), run=host)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slot.serve)
        await slot.first_spawn.wait()
        slot.on_keeper_event(Exited("a", 1, 1))
        with trio.fail_after(10):
            while slot.status is not NodeStatus.RESTARTING:  # noqa: ASYNC110 (a plain field)
                await trio.sleep(0.1)
        asked = trio.current_time()
        host.stop_requested = whole_run
        await slot.terminate(grace=10.0)
        await slot.finished.wait()
    assert trio.current_time() - asked < 1.0  # not the 30 s delay
    assert slot.status is ended  # no next generation
    assert host.records[-1] == ("a", {"status": str(ended)})
