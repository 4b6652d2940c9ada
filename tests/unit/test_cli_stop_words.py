"""What a stop's status line says it waits for (cli/waiting.py): a node that runs the SDK is
sent STOP, then SIGTERM after the grace; a process node gets SIGTERM at once."""

from __future__ import annotations

from cli.waiting import stop_progress


def test_a_stop_says_the_next_step_of_the_nodes_it_waits_for() -> None:
    nodes = [{"id": "shell", "status": "running", "process": True},
             {"id": "sink", "status": "running", "process": False}]  # fmt: skip
    info = {"id": "0190a1b2c3d4", "name": "demo", "status": "running", "nodes": nodes}
    text, _ = stop_progress(info, 10.0, 3.0)
    assert text.endswith("waiting for shell, sink (SIGTERM in 7s)"), text
    nodes[1]["status"] = "stopped"  # only the process node is left: it had SIGTERM already
    text, _ = stop_progress(info, 10.0, 3.0)
    assert text.endswith("waiting for shell (sent SIGTERM; SIGKILL in 7s)"), text
    text, _ = stop_progress(info, 10.0, 11.0)
    assert text.endswith("waiting for shell (sent SIGKILL)"), text
