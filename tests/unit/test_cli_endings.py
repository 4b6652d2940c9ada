"""How each node ended, in the words every command prints (cli/endings.py)."""

from __future__ import annotations

from typing import Any

import pytest

from cli.endings import node_ending


def node(status: str, code: int | None = None, sig: str | None = None, **extra: Any) -> dict:
    return {"id": "n", "status": status, "exit_code": code, "signal": sig, **extra}


@pytest.mark.parametrize(
    ("info", "words"),
    [
        (node("succeeded", 0), "exited 0"),
        (node("failed", 1), "exited 1"),
        (node("failed", -11, "SIGSEGV"), "killed by SIGSEGV"),
        (node("failed", stderr_tail=["could not start: no such file"]),
         "could not start: no such file"),
        (node("stopped", 0), "stopped"),
        (node("stopped", 2), "stopped (exited 2)"),
        (node("stopped", -15, "SIGTERM"),
         "stopped by SIGTERM (STOP did not end it in its grace, or it never connected)"),
        (node("killed", -9, "SIGKILL"),
         "killed by SIGKILL (it had not ended after STOP and SIGTERM)"),
        (node("stopped", -15, "SIGTERM", process=True), "stopped by SIGTERM"),
        (node("stopped", 0, removed=True), "removed from the run (stopped)"),
        (node("killed", -9, "SIGKILL", process=True),
         "killed by SIGKILL (it had not ended after SIGTERM)"),
        (node("killed", -15, "SIGTERM"),
         "ended by SIGTERM as it was being killed (no grace left)"),
        # it ended of STOP before the SIGKILL that went with it landed: not killed by it
        (node("killed", 0, None), "exited 0 as it was being killed (no grace left)"),
        (node("dynamic"), "dynamic, not attached"),
        (node("pending"), "never started"),
        (node("lost", -9, "SIGKILL"),
         "lost with its machine (not back within cluster_grace; never started elsewhere)"),
        ({**node("lost"), "stderr_tail": ["machine b left (its daemon stopped, and its nodes)"]},
         "lost with its machine (it left: its daemon stopped; never started elsewhere)"),
        (node("running"), "still running"),
    ],
)  # fmt: skip
def test_each_ending_in_words(info: dict, words: str) -> None:
    assert node_ending(info) == words


def test_a_forced_stops_sigkill_is_not_said_to_have_waited_for_the_grace() -> None:
    """`--force`, a second Ctrl-C (the run's `stop_grace` 0): the SIGKILL came at once."""
    for killed in (node("killed", -9, "SIGKILL"), node("killed", -9, "SIGKILL", process=True),
                   node("killed")):  # fmt: skip
        assert node_ending(killed, forced=True) == "killed by SIGKILL (no grace left)"
    assert node_ending(node("killed", -15, "SIGTERM"), forced=True) == (
        "ended by SIGTERM as it was being killed (no grace left)")
    assert node_ending(node("stopped", 0), forced=True) == "stopped"
