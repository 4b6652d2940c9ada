"""A run's supervision in process, with a fake keeper and `autojump_clock`: no real waiting."""

from __future__ import annotations

import itertools
import signal
from functools import partial

import pytest
import trio
import trio.testing
from run_fakes import Behaviour, FakeKeeper, RunMaker

from daemon.model.keeper_messages import Edge, UnwireStdout, WireStdout
from daemon.model.settings import current as settings
from daemon.model.states import NodeStatus, RunStatus
from daemon.run import lifecycle
from daemon.run.slot import KILL_WAIT_S
from daemon.run.supervisor import Run
from node_sdk import channel
from node_sdk.config import Edge as WireEdge

TWO = """
nodes:
  - id: source
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
  - id: sink
    path: NODES/seqsink.py
    inputs:
      data: source/count
"""

CRASHER = """
nodes:
  - id: crasher
    path: NODES/crasher.py
    restart_policy: on-failure
    max_restarts: 3
    restart_window: 1000
    restart_delay: 1
    max_restart_delay: 100
    inputs:
      tick: flow/timer/millis/100
"""


WAIT_S = 600.0  # virtual seconds


def node_row(run: Run, node: str) -> dict[str, object]:
    info = run.store.run(run.id)
    assert info is not None
    return next(n for n in info["nodes"] if n["id"] == node)


async def wait_for(predicate: object) -> None:
    """Poll a plain field (no event to wait on): free under autojump_clock, bounded."""
    assert callable(predicate)
    with trio.fail_after(WAIT_S):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_late_node_fails_the_start_barrier(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(TWO, {"source": Behaviour(), "sink": Behaviour(hello=False)})
    began = trio.current_time()
    await lifecycle.supervise(run, keeper=keeper)
    assert run.status is RunStatus.FAILED
    assert run.late == ["sink"]
    timeout = settings().start_timeout
    assert run.error is not None
    late = f"nodes did not connect within {timeout:g}s: sink (a node connects when"
    assert run.error.startswith(late)
    assert trio.current_time() - began >= timeout
    assert run.slots["sink"].status is NodeStatus.FAILED
    assert node_row(run, "sink")["status"] == "failed"  # memory and the store agree
    assert keeper.quit_sent


async def test_restarts_back_off_and_show_restarting(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(CRASHER, {"crasher": Behaviour(exit_after=0.5, code=1)})
    slot = run.slots["crasher"]
    seen: list[tuple[NodeStatus, object]] = []

    async def watch() -> None:  # every time memory says restarting, so must the store
        while True:
            await wait_for(lambda: slot.status is NodeStatus.RESTARTING)
            seen.append((slot.status, node_row(run, "crasher")["status"]))
            await wait_for(lambda: slot.status is not NodeStatus.RESTARTING)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await lifecycle.supervise(run, keeper=keeper)
        nursery.cancel_scope.cancel()
    assert seen == [(NodeStatus.RESTARTING, "restarting")] * 3
    spawns = [p.spawned_at for p in keeper.processes]
    assert len(spawns) == 4  # the first generation and max_restarts more
    gaps = [later - earlier - 0.5 for earlier, later in itertools.pairwise(spawns)]
    assert [round(g, 1) for g in gaps] == [1.0, 2.0, 4.0]  # restart_delay doubling
    assert slot.status is NodeStatus.FAILED
    assert node_row(run, "crasher")["status"] == "failed"
    assert node_row(run, "crasher")["restarts"] == slot.restarts == 3
    # why it failed for good is where its ending is read, not only in the daemon's log
    tail = node_row(run, "crasher")["stderr_tail"]
    assert tail[-1] == "gave up after 3 restarts within 1000s (max_restarts)", tail
    assert run.status is RunStatus.FAILED


async def test_a_lost_keeper_fails_the_run_and_ends_every_slot(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(TWO, {"source": Behaviour(), "sink": Behaviour()})
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: lifecycle.supervise(
            run, keeper=keeper, task_status=task_status))  # fmt: skip
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        keeper.die()
        with trio.fail_after(1.0):  # noticed at once, no grace waited on a dead keeper
            await run.done.wait()
    assert run.status is RunStatus.FAILED
    assert "keeper" in (run.error or "")
    for node in ("source", "sink"):
        assert run.slots[node].status is NodeStatus.FAILED
        assert node_row(run, node)["status"] == "failed"
    assert run.store.run(run.id)["status"] == "failed"  # type: ignore[index]


async def test_stop_escalates_from_stop_to_sigterm_to_sigkill(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    stubborn = Behaviour(obeys_stop=False, obeys_term=False)
    run, keeper = make_run(TWO, {"source": stubborn, "sink": Behaviour()})
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: lifecycle.supervise(
            run, keeper=keeper, task_status=task_status))  # fmt: skip
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        asked = trio.current_time()
        await run.stop(grace=10.0)
        await run.done.wait()
    stops = [t for t, node in keeper.stops if node == "source"]
    sent = [(t - asked, sig) for t, node, sig in keeper.signals if node == "source"]
    assert stops
    assert stops[0] - asked < 1.0
    assert [sig for _, sig in sent] == [signal.SIGTERM, signal.SIGKILL]
    assert 10.0 <= sent[0][0] < 10.0 + KILL_WAIT_S
    assert sent[1][0] - sent[0][0] >= 5.0  # grace / 2 after SIGTERM
    assert run.slots["source"].status is NodeStatus.KILLED
    assert run.slots["sink"].status is NodeStatus.STOPPED
    assert run.status is RunStatus.STOPPED


async def test_a_failed_store_write_degrades_the_run_but_never_fails_it(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(
        TWO, {"source": Behaviour(exit_after=5.0), "sink": Behaviour(exit_after=6.0)}
    )
    store = run.store
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: lifecycle.supervise(
            run, keeper=keeper, task_status=task_status))  # fmt: skip
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        store.failing = True  # type: ignore[attr-defined]
        await wait_for(lambda: run.slots["source"].finished.is_set())
        store.failing = False  # type: ignore[attr-defined]
        await run.done.wait()
    assert store.failures >= 1  # type: ignore[attr-defined]
    assert run.status is RunStatus.SUCCEEDED
    assert (run.degraded or "").startswith("state store: ")
    assert run.store.run(run.id)["degraded"].startswith("state store: ")  # type: ignore[index]


ONE = """
nodes:
  - id: worker
    path: NODES/counter.py
    restart_policy: on-failure
    restart_delay: 10
    inputs:
      tick: flow/timer/millis/100
"""


async def test_after_a_manual_restart_a_crash_still_backs_off(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(ONE, {"worker": Behaviour()})
    slot = run.slots["worker"]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: lifecycle.supervise(
            run, keeper=keeper, task_status=task_status))  # fmt: skip
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        await slot.restart_now(grace=5.0)  # `flow node restart`: at once
        assert [p.generation for p in keeper.processes] == [1, 2]
        await wait_for(lambda: slot.status is NodeStatus.RUNNING)
        crashed = trio.current_time()
        live = keeper.live("worker")
        assert live is not None
        live.end(1)
        await wait_for(lambda: len(keeper.processes) == 3)
        assert keeper.processes[2].spawned_at - crashed >= 10.0  # restart_delay, not skipped
        await run.stop(grace=1.0)
        await run.done.wait()
    assert run.status is RunStatus.STOPPED


async def test_a_start_that_fails_before_the_keeper_still_ends_the_run(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(TWO, {"source": Behaviour(), "sink": Behaviour()})
    run.sockets.parent.mkdir(parents=True, exist_ok=True)
    run.sockets.write_text("a file where the run's socket folder goes")  # mkdir fails
    with pytest.raises(FileExistsError):  # the start's own error, to whoever started it
        await lifecycle.supervise(run, keeper=keeper)
    # a `flow stop` waiting on `done` returns (before, it waited forever)
    assert run.done.is_set()


async def test_a_manual_restart_during_the_restart_delay_restarts_at_once(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(ONE, {"worker": Behaviour()})
    slot = run.slots["worker"]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: lifecycle.supervise(
            run, keeper=keeper, task_status=task_status))  # fmt: skip
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        live = keeper.live("worker")
        assert live is not None
        live.end(1)  # a crash: restart_delay is 10 s
        await wait_for(lambda: slot.status is NodeStatus.RESTARTING)
        asked = trio.current_time()
        await slot.restart_now(grace=5.0)  # `flow node restart` meanwhile: at once
        assert [p.generation for p in keeper.processes] == [1, 2]
        assert keeper.processes[1].spawned_at - asked < 1.0
        await wait_for(lambda: slot.status is NodeStatus.RUNNING)
        await run.stop(grace=1.0)
        await run.done.wait()
    assert slot.status is NodeStatus.STOPPED  # not `restarting`, not `failed`
    assert run.status is RunStatus.STOPPED  # a crash that a restart healed fails nothing


# TWO, its sink restarted once after a crash
CHAIN = TWO.replace("NODES/seqsink.py\n", """NODES/seqsink.py
    restart_policy: on-failure
    restart_delay: 1
    max_restarts: 1
    restart_window: 1000
""")


def said_to(keeper: FakeKeeper, node: str, kind: type) -> list[channel.Message]:
    """What the run sent `node` of one message class, in order."""
    return [m for n, m in keeper.sent if n == node and isinstance(m, kind)]


async def test_a_clean_exit_not_said_goodbye_closes_its_receivers_at_its_end_of_stream(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    # the fake processes never say bye, as a real one whose bye the daemon reads after the
    # keeper's report of its exit: exit 0 still means its end-of-stream was sent
    run, keeper = make_run(TWO, {"source": Behaviour(exit_after=0.5), "sink": Behaviour()})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(lifecycle.supervise, run, keeper=keeper))
        await wait_for(lambda: run.slots["source"].finished.is_set())
        await wait_for(lambda: said_to(keeper, "sink", channel.UpstreamDone))
        assert said_to(keeper, "sink", channel.UpstreamDone) == [
            channel.UpstreamDone("data", "source/count", 1)]  # fmt: skip
        await run.stop(grace=1.0)
    crashed, keeper = make_run(TWO, {"source": Behaviour(exit_after=0.5, code=1),
                                     "sink": Behaviour()})  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(lifecycle.supervise, crashed, keeper=keeper))
        await wait_for(lambda: said_to(keeper, "sink", channel.UpstreamDone))
        assert said_to(keeper, "sink", channel.UpstreamDone) == [  # at once: it crashed
            channel.UpstreamDone("data", "source/count", 0)]  # fmt: skip
        await crashed.stop(grace=1.0)


async def test_a_sender_is_told_its_receiver_restarts_then_ends(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    run, keeper = make_run(CHAIN, {"source": Behaviour(),
                                   "sink": Behaviour(exit_after=0.5, code=1)})  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(lifecycle.supervise, run, keeper=keeper))
        await wait_for(lambda: run.slots["sink"].status is NodeStatus.RESTARTING)
        assert said_to(keeper, "source", channel.ReceiverDown) == [
            channel.ReceiverDown("sink", True)]  # fmt: skip
        await wait_for(lambda: run.slots["sink"].finished.is_set())  # its second crash
        assert said_to(keeper, "source", channel.ReceiverDown) == [
            channel.ReceiverDown("sink", True), channel.ReceiverDown("sink", False)]  # fmt: skip
        await run.stop(grace=1.0)
    assert channel.Stop(everyone=True) in said_to(keeper, "source", channel.Stop)


async def test_a_sender_let_go_at_the_start_hears_of_a_receiver_restarting_before_it(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    # the sink crashes and waits out its restart delay while the source is still starting:
    # the word said then was not sent (the source had not connected), so the barrier says it
    run, keeper = make_run(CHAIN, {"source": Behaviour(hello_after=0.7),
                                   "sink": Behaviour(exit_after=0.5, code=1)})  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(lifecycle.supervise, run, keeper=keeper))
        await wait_for(lambda: said_to(keeper, "source", channel.Start))
        assert run.slots["sink"].status is NodeStatus.RESTARTING
        assert said_to(keeper, "source", channel.ReceiverDown) == [
            channel.ReceiverDown("sink", True)]  # fmt: skip
        await run.stop(grace=1.0)


LINES = """
nodes:
  - id: talker
    path: sleep
    args: "3600"
    outputs: [lines]
    send_stdout_as: lines
  - id: source
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
"""


async def test_a_live_edge_of_a_process_nodes_output_goes_to_its_keeper(
    make_run: RunMaker, autojump_clock: trio.testing.MockClock
) -> None:
    # a process node never connects: its keeper sends its lines, so its keeper is told
    run, keeper = make_run(LINES, {"talker": Behaviour(hello=False), "source": Behaviour()})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(lifecycle.supervise, run, keeper=keeper))
        await wait_for(lambda: said_to(keeper, "source", channel.Start))
        observer = WireEdge("ipc:///tmp/obs-1-abcdef", "observer-ab12cd", "observe",
                            "drop_oldest", 64)  # fmt: skip
        run.add_live_edge("talker", "lines", observer)
        run.add_live_edge("source", "count", observer)  # a node of the SDK: told itself
        assert [m for m in keeper.received if isinstance(m, WireStdout)] == [
            WireStdout("talker", Edge(observer.endpoint, "observer-ab12cd", "observe",
                                      "drop_oldest", 64))]  # fmt: skip
        assert said_to(keeper, "source", channel.Wire) == [channel.Wire("count", observer)]
        run.remove_live_edge(observer.endpoint)
        assert [m for m in keeper.received if isinstance(m, UnwireStdout)] == [
            UnwireStdout("talker", observer.endpoint)]  # fmt: skip
        assert said_to(keeper, "source", channel.Unwire) == [
            channel.Unwire("count", observer.endpoint)]  # fmt: skip
        await run.stop(grace=1.0)


async def test_an_input_added_again_never_shares_a_socket_with_another(
    make_run: RunMaker,
) -> None:
    # an input connected again replaces its entry: the next input added must not get the
    # name it had (two inputs on one socket: a stale first message, a false drop count)
    run, _ = make_run(TWO, {"source": Behaviour(), "sink": Behaviour()})
    first = run.new_input_endpoint("sink", "extra")
    again = run.new_input_endpoint("sink", "extra")  # `node connect` of it after a disconnect
    other = run.new_input_endpoint("sink", "more")
    assert len({first, again, other, run.input_endpoint("sink", "data")}) == 4
