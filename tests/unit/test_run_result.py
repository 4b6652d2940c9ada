"""The run's result from its nodes' outcomes (SPEC 5, M3); which nodes recovery brings back."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.keeper.ledger import read_exits
from daemon.model.result import RunEnding, run_result
from daemon.model.states import NodeStatus, RunStatus
from daemon.run.recovery import MISSING, ended_status

ENDED = [NodeStatus.SUCCEEDED, NodeStatus.STOPPED, NodeStatus.FAILED, NodeStatus.KILLED]
statuses = st.lists(st.sampled_from(ENDED), max_size=8)
endings = st.builds(RunEnding, st.booleans(), st.booleans(), st.booleans(), st.booleans())


@given(statuses, endings)
def test_any_failed_node_fails_the_run_even_when_it_was_then_stopped(
    nodes: list[NodeStatus], ending: RunEnding
) -> None:
    result = run_result(nodes, ending)
    if NodeStatus.FAILED in nodes and not ending.interrupted:
        assert result is RunStatus.FAILED
    if result is RunStatus.SUCCEEDED:
        assert NodeStatus.FAILED not in nodes
        assert not ending.stop_requested
        assert not ending.interrupted
        assert not ending.late


@given(statuses, st.booleans())
def test_a_stop_without_a_failed_node_is_stopped(nodes: list[NodeStatus], stop: bool) -> None:
    ok = [s for s in nodes if s is not NodeStatus.FAILED]
    expected = RunStatus.STOPPED if stop else RunStatus.SUCCEEDED
    assert run_result(ok, RunEnding(stop_requested=stop)) is expected


@given(statuses, endings)
def test_the_result_depends_on_the_outcomes_not_their_order(
    nodes: list[NodeStatus], ending: RunEnding
) -> None:
    assert run_result(nodes, ending) is run_result(list(reversed(nodes)), ending)


def test_the_table() -> None:
    stopped = RunEnding(stop_requested=True)
    assert run_result([NodeStatus.STOPPED, NodeStatus.FAILED], stopped) is RunStatus.FAILED
    assert run_result([NodeStatus.STOPPED, NodeStatus.KILLED], stopped) is RunStatus.STOPPED
    assert run_result([NodeStatus.SUCCEEDED], RunEnding()) is RunStatus.SUCCEEDED
    assert run_result([], RunEnding(late=True)) is RunStatus.FAILED
    lost = RunEnding(keeper_lost=True, interrupted=True)
    assert run_result([NodeStatus.SUCCEEDED], lost) is RunStatus.FAILED
    gone = RunEnding(interrupted=True)
    assert run_result([NodeStatus.FAILED], gone) is RunStatus.INTERRUPTED  # decided later


def test_recovery_brings_back_only_nodes_that_had_not_ended(tmp_path: Path) -> None:
    assert ended_status("running", MISSING) is None
    assert ended_status("interrupted", 0) is None  # stopped with the daemon: it comes back
    assert ended_status("restarting", MISSING) is None
    assert ended_status("succeeded", MISSING) is NodeStatus.SUCCEEDED
    assert ended_status("failed", MISSING) is NodeStatus.FAILED
    assert ended_status("running", 0) is NodeStatus.SUCCEEDED  # its keeper saw it end
    assert ended_status("running", 3) is NodeStatus.FAILED
    assert ended_status("no such status", 0) is None
    ledger = tmp_path / "exits.jsonl"
    ledger.write_text(
        '{"node": "a", "generation": 2, "code": 0}\n'
        "garbage\n"
        '{"node": "b", "generation": true, "code": 1}\n'
        '{"node": "c", "generation": 1, "code": null}\n'
    )
    assert read_exits(ledger) == {("a", 2): 0, ("c", 1): None}
    assert read_exits(tmp_path / "none") == {}
