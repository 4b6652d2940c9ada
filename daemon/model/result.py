"""A run's result, computed in one place from its nodes' outcomes only (SPEC 5, M3)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from daemon.model.states import NodeStatus, RunStatus


@attrs.frozen
class RunEnding:
    """What the run itself went through, besides its nodes' outcomes.

    Auxiliary faults (a log write, the state store, a gone client) are not here on purpose:
    they never decide a result (SPEC 7.3), so they cannot be passed in.
    """

    stop_requested: bool = False  # `flow stop`, `flow down`, Ctrl-C, SIGTERM, --stop-after
    interrupted: bool = False  # the daemon went down by a signal: the run comes back later
    keeper_lost: bool = False  # nothing could report its nodes' ends any more
    late: bool = False  # a node missed the start barrier: the start failed


def run_result(nodes: Iterable[NodeStatus], ending: RunEnding) -> RunStatus:
    """`failed` if any node failed or was lost (also when the run was then stopped), else
    how it ended.

    A node that exhausted its restarts is `failed` and so fails the run. A node killed by
    flow after the stop grace (`killed`) did not fail on its own: a stop stays `stopped`.
    `interrupted` is not a final result: the recovered run decides later.
    """
    if ending.late or ending.keeper_lost:
        return RunStatus.FAILED
    if ending.interrupted:
        return RunStatus.INTERRUPTED
    # a node lost with its machine (and not back within the grace) fails the run too
    if any(status in (NodeStatus.FAILED, NodeStatus.LOST) for status in nodes):
        return RunStatus.FAILED
    if ending.stop_requested:
        return RunStatus.STOPPED
    return RunStatus.SUCCEEDED
