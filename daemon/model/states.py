"""Every state a run and a node can be in, and why each transition happens.

Run:
    starting  -> running     every spawned node connected (start barrier released)
    starting  -> failed      a node did not connect within start_timeout (all stopped)
    running   -> succeeded   every non-dynamic node exited, none failed
    running   -> failed      every non-dynamic node exited, at least one failed
    running   -> stopped     every non-dynamic node exited after a stop request
    any live  -> stopped     the daemon shut down (`flow down`): never recovered
    any live  -> interrupted the daemon was terminated by a signal: recovered at its next start
    interrupted / running (after a daemon crash)
              -> running     recovered at the daemon's start: living nodes adopted through
                             their keeper, or the run started again (generation + 1)

Node:
    pending   -> running     its process was spawned (generation + 1, recorded first)
    running   -> succeeded   exited 0
    running   -> failed      exited non-zero or by a signal we did not send, or could not spawn
    running   -> stopped     exited after STOP or SIGTERM during a stop
    running   -> killed      needed SIGKILL after the grace (it ignored STOP and SIGTERM)
    running   -> interrupted stopped because the daemon went down by a signal (SIGTERM, SIGINT)
    running   -> lost        its machine stopped answering (docs/cluster.md); never started
                             anywhere else
    lost      -> running     its machine came back within cluster_grace: re-adopted
    lost                     (for good) cluster_grace passed: it fails the run
    failed / succeeded
              -> restarting  its restart_policy wants it back: waits restart_delay (doubling,
                             capped at max_restart_delay), at most max_restarts per window
    restarting -> pending    the delay is over: the next generation is spawned
    restarting -> failed     (or stays as it was) the run was stopped during the delay
    restarting -> stopped    `flow node stop` (or `remove`) of it during the delay
    restarting -> interrupted the daemon went down by a signal during the delay
    dynamic                  `path: dynamic`: never spawned by the daemon

Recovery (SPEC 7.4) brings back only the nodes whose last recorded status is in
`COMES_BACK`: they were running, about to run, or interrupted with the daemon. A node that
had ended (succeeded, failed on its own, stopped or killed) is never started again by it.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in (RunStatus.STARTING, RunStatus.RUNNING)


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
    RESTARTING = "restarting"
    DYNAMIC = "dynamic"
    LOST = "lost"  # its machine is lost (docs/cluster.md)

    @property
    def finished(self) -> bool:
        return self in (
            NodeStatus.SUCCEEDED,
            NodeStatus.STOPPED,
            NodeStatus.FAILED,
            NodeStatus.KILLED,
            NodeStatus.INTERRUPTED,
            NodeStatus.LOST,
        )

    @property
    def comes_back(self) -> bool:
        """Recovery starts this node again: it had not ended when the daemon went away."""
        return self in COMES_BACK


COMES_BACK = frozenset(
    {NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.RESTARTING, NodeStatus.INTERRUPTED}
)
# the ends whose record keeps the node's stderr tail: a failure's last lines, and a lost
# node's cause (its machine left, or was not back within the grace)
KEEPS_TAIL = frozenset({NodeStatus.FAILED, NodeStatus.LOST})


def exit_status(
    code: int | None, *, lost: bool, stopped: bool, interrupted: bool, killed: bool
) -> NodeStatus:
    """How a node's generation ended, from its exit `code` and what flow did to it: its
    machine `lost`, a stop asked of it (`stopped`), by the daemon going down by a signal
    (`interrupted`: recovery restarts it), SIGKILL after the grace (`killed`)."""
    if lost:  # its machine never came back within the grace (docs/cluster.md)
        return NodeStatus.LOST
    if stopped and interrupted:
        return NodeStatus.INTERRUPTED
    if killed:
        return NodeStatus.KILLED
    if stopped:
        return NodeStatus.STOPPED
    return NodeStatus.SUCCEEDED if code == 0 else NodeStatus.FAILED
