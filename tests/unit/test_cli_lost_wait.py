"""A stop of a run with nodes on another machine waits for a lost machine (cli/waiting.py):
its status line says why, and the CLI's budget covers the cluster's loss bound and grace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.waiting import lost_machine_wait, stop_progress
from daemon.model import settings


def run(*nodes: tuple[str, str, str | None]) -> dict[str, Any]:
    return {"id": "0190a1b2c3d4", "name": "demo", "status": "running",
            "nodes": [{"id": i, "status": s, "machine": m} for i, s, m in nodes]}  # fmt: skip


def test_a_stop_waiting_only_for_lost_nodes_says_so() -> None:
    text, _ = stop_progress(run(("cam", "lost", "gpu"), ("sink", "stopped", "robot")), 10.0, 3.0)
    assert "waiting for cam on a lost machine (until cluster_grace is over)" in text
    text, _ = stop_progress(run(("cam", "lost", "gpu"), ("sink", "running", "robot")), 10.0, 3.0)
    assert "waiting for sink (SIGTERM in 7s)" in text


def test_the_budget_grows_by_the_loss_bound_and_grace_only_for_placed_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FLOW_CLUSTER_GRACE", "40s")
    monkeypatch.setenv("FLOW_CLUSTER_HEARTBEAT", "1s")
    monkeypatch.setenv("FLOW_CLUSTER_LOST_AFTER", "3s")
    read = lambda: settings.load(tmp_path)  # noqa: E731
    assert lost_machine_wait([run(("a", "running", None))], read) == 0.0
    assert lost_machine_wait([run(("a", "running", "gpu"))], read) == 44.0
