"""How a run and each of its nodes ended: one account, the same under every command.

`flow run`, attached `flow start`, `flow stop`, `flow down` and `flow restart` all print a
finished run with `cli.render.run_result`: the run's status, then one line per node saying
how it ended in these words (stopped / exited 0 / exited 1 / killed by SIGKILL ...), then
the stderr tail of each failed node.
"""

from __future__ import annotations

from typing import Any

from cli.terminal_text import displayable
from daemon.model.cluster import is_left_cause

# the style a node's line is coloured with, by its status
ENDING_STYLES = {
    "succeeded": "green",
    "stopped": "yellow",
    "failed": "bold red",
    "killed": "bold red",
    "interrupted": "yellow",
}


def node_ending(node: dict[str, Any], forced: bool = False) -> str:
    """How one node ended, in words: `exited 0`, `stopped`, `killed by SIGKILL (it had not
    ended after STOP and SIGTERM)`, `removed from the run (stopped by SIGTERM)`...

    `forced`: its run's stop was forced (`--force`, a second Ctrl-C: the run's
    `stop_grace` 0), so a SIGKILL did not wait for the grace to run out."""
    ending = _own_ending(node, forced)
    # a node `flow node remove`d ended then, not with the run its row stays in
    return f"removed from the run ({ending})" if node.get("removed") else ending


def _own_ending(node: dict[str, Any], forced: bool) -> str:
    status = str(node.get("status"))
    code = node.get("exit_code")
    sig = node.get("signal")
    process = bool(node.get("process"))  # a process node gets no STOP: SIGTERM at once
    if status == "killed":
        if sig == "SIGKILL" or (sig is None and code is None):
            if forced:
                return "killed by SIGKILL (no grace left)"
            asked = "SIGTERM" if process else "STOP and SIGTERM"
            return f"killed by SIGKILL (it had not ended after {asked})"
        # no grace (`--force`, a second Ctrl-C): STOP, SIGTERM and SIGKILL went out
        # together, and the node ended of one of the first two before the last landed
        how = f"ended by {sig}" if sig else f"exited {code}"
        return f"{how} as it was being killed (no grace left)"
    if status == "stopped":
        if sig == "SIGTERM" and process:
            return "stopped by SIGTERM"
        if sig == "SIGTERM":  # a node that had not connected yet is sent no STOP either
            return "stopped by SIGTERM (STOP did not end it in its grace, or it never connected)"
        if sig:
            return f"stopped (ended by {sig})"
        return "stopped" if code in (0, None) else f"stopped (exited {code})"
    if status in ("succeeded", "failed"):
        if sig:
            return f"killed by {sig}"
        if code is not None:
            return f"exited {code}"
        causes = [t for t in node.get("stderr_tail") or [] if t.strip()]
        return displayable(causes[-1]) if causes else status  # the node's own text
    if status == "interrupted":
        return "interrupted with the daemon (recovery starts it again)"
    if status == "dynamic":
        return "dynamic, not attached"
    if status == "pending":
        return "never started"
    if status == "lost":  # a run's result: its machine left, or did not come back in time
        causes = node.get("stderr_tail") or []
        if causes and is_left_cause(str(causes[-1])):
            return "lost with its machine (it left: its daemon stopped; never started elsewhere)"
        return "lost with its machine (not back within cluster_grace; never started elsewhere)"
    return f"still {status}"


def failed_line(node: dict[str, Any]) -> str:
    """What `flow run` and a followed run say the moment a node fails for good while the
    rest of the run goes on (its end says it again, with the rest)."""
    return f"node {node.get('id')} {node_ending(node)}: the rest of the run goes on " \
        "(Ctrl-C stops it)"  # fmt: skip
