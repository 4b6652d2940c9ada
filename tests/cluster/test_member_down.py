"""`flow down` on a member that hosts nodes of a coordinator's run: the member says goodbye
and stops them, and the coordinator ends them `lost` at once, saying the machine left,
instead of showing them lost for the whole cluster_grace (docs/cluster.md, "Loss and
return")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import wait_for
from netns import Machine, run_info
from test_placement import ready, start_across


def test_flow_down_on_a_member_ends_its_nodes_of_a_run_at_once_as_left(
    patient_cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(patient_cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    down = b.flow("down")
    assert down.returncode == 0, down.stdout + down.stderr
    wait_for(lambda: not (source_pids & set(b.pids())), "b's nodes stopped by its flow down")

    def source() -> dict[str, Any]:
        return next(n for n in run_info(a, run)["nodes"] if n["id"] == "source")

    wait_for(lambda: run_info(a, run)["status"] == "failed", "the run ended failed")
    nodes = {n["id"]: n["status"] for n in run_info(a, run)["nodes"]}
    assert nodes == {"source": "lost", "sink": "succeeded"}, nodes  # its input closed
    # said to have left (before: `lost` for the whole grace, then "lost for more than
    # cluster_grace" though the machine had said goodbye)
    assert "machine b left" in " ".join(source()["stderr_tail"]), source()
