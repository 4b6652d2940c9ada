"""Recovery makes a run's graph edits again with the endpoints they made live, so a
receiver adopted on one is still sent to after any edit of the journal is left out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.model.descriptor import OutputRef
from daemon.run import graph_edits
from daemon.run.supervisor import Run

GRAPH = """
nodes:
  - id: src
    path: NODES/counter.py
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
  - id: a
    path: NODES/listener.py
    inputs:
      x: src/count
"""
MACHINES = frozenset({"local"})


def test_replay_gives_inputs_their_own_endpoints_whatever_is_left_out(
    make_run: Callable[..., tuple[Run, Any]],
) -> None:
    live, _ = make_run(GRAPH, {})
    journal = [
        # an add that is not made again (here: a text that no longer parses) made x1 live
        {"op": "add", "path": "/gone/extra.yml", "text": "id: [", "endpoints": {
            "y": live.new_input_endpoint("extra", "y")}},
        {"op": "connect", "source": "src/count", "target": "a/y", "endpoints": {
            "y": graph_edits.connect(live, OutputRef("src", "count"), "a", "y")[1]}},
    ]  # fmt: skip
    recovered, _ = make_run(GRAPH, {})
    graph_edits.replay(recovered, journal, MACHINES)
    assert recovered.input_endpoint("a", "y") == live.input_endpoint("a", "y")
    assert live.input_endpoint("a", "y").endswith("/x2")
    assert "not made again" in (recovered.degraded or "")  # said, not silent
    # the next input added after the recovery takes a number no edit took
    assert recovered.new_input_endpoint("a", "z").endswith("/x3")
