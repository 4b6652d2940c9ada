"""The one error hierarchy of the daemon (SPEC 7.2).

    FlowError
    ├── RecoverableError       answered to whoever asked, logged; the loop goes on
    │   ├── BadRequest         malformed, oversized, wrong version, unknown type
    │   ├── UnknownRun         no run matches the id, prefix or name
    │   ├── UnknownNode        no node of that id in the run
    │   ├── UnknownParam       no parameter of that key on the node
    │   ├── RunNotActive       the run has already ended
    │   ├── NodeNotRunning     a stop or restart of a node that has ended for good
    │   ├── DataflowInvalid    the YAML file failed validation (carries every problem)
    │   ├── NodeSpawnFailed    one node could not be started
    │   ├── ParamNotSet        a node refused a parameter or did not answer in time
    │   ├── StateWriteFailed   one write to the state store failed while running: the
    │   │                      run goes on, degraded (recording is auxiliary, SPEC 7.3)
    │   └── KeeperLost         a run's keeper died or fell silent: that run fails
    └── FatalError             stops every node cleanly, exits non-zero
        ├── ControlSocketUnavailable   cannot bind the control socket
        ├── StateStoreUnusable         the SQLite store cannot be opened at start
        └── BrokenInvariant            the daemon's own bookkeeping is wrong

The fatal list is exactly the three classes above (`FATAL_ERRORS`, which the root catch
point in `daemon.main` reads); anything else is recoverable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first exception that is no group, however deep a nursery nested it."""
    first = group.exceptions[0]
    return first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the known name closest to a mistyped one, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class FlowError(Exception):
    """Root of every error flow raises on purpose."""


class RecoverableError(FlowError):
    """An error that is answered and logged while the daemon goes on."""


class BadRequest(RecoverableError):
    """A control request that cannot be understood."""


class NodeNotRunning(RecoverableError):
    """A stop or a restart of a node that has ended for good."""


class ShuttingDown(RecoverableError):
    """A start asked of a daemon that is stopping every run to end (`flow down`, SIGTERM)."""

    def __init__(self) -> None:
        super().__init__("the flow daemon is shutting down: nothing new starts now; run "
                         "`flow up` once it has stopped")  # fmt: skip


class UnknownRun(RecoverableError):
    """No run matches the given id, prefix or name."""

    def __init__(self, run: str, detail: str | None = None) -> None:
        self.run = run
        super().__init__(detail or f"no run with ID or name {run!r}")


def ambiguous_run(ref: str, ids: list[str]) -> str:
    """The one line for a RUN reference more than one run matches: a few of their ids,
    long enough to tell them apart (a UUIDv7's first 8 characters are its minute)."""
    shown = ", ".join(run_id[:13] for run_id in ids[:5])
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return f"run reference {ref!r} is ambiguous: {shown}{more}"


def no_port(node: str, kind: str, port: str, declared: list[str]) -> BadRequest:
    """`node 'cam' has no output 'imgae' (declared: image, info)`: one line, whichever
    command named the port (`kind`: output or input)."""
    known = f"declared: {', '.join(declared)}" if declared else f"it declares no {kind}s"
    return BadRequest(f"node {node!r} has no {kind} {port!r} ({known})")


class ForegroundRun(RecoverableError):
    """A run a `flow run` supervises in its own process: the daemon cannot act on it."""

    def __init__(self, run: str, pid: str, *, alive: bool = True) -> None:
        self.run = run
        super().__init__(
            f"run {run} is a foreground `flow run` (pid {pid}): its own process supervises"
            " it (Ctrl-C there, or `flow stop`); start it with `flow start` for this"
            if alive else
            f"run {run} was a foreground `flow run` whose process (pid {pid}) is gone:"
            " `flow stop` records its end"
        )  # fmt: skip


class UnknownNode(RecoverableError):
    """No node of that id in the run; `known`, its nodes, give a did-you-mean."""

    def __init__(self, run: str, node: str, known: Iterable[str] = ()) -> None:
        self.run = run
        self.node = node
        super().__init__(f"no node {node!r} in dataflow {run}{did_you_mean(node, known)}")


class UnknownParam(RecoverableError):
    """A node has no parameter of that key: a failed lookup (exit 1), as an unknown node."""

    def __init__(self, node: str, key: str) -> None:
        super().__init__(f"node {node!r} has no parameter {key!r}")


class RunNotActive(RecoverableError):
    """The run has already ended."""

    def __init__(self, run: str, status: str, name: str | None = None) -> None:
        self.run = run
        self.status = status
        label = f"{name} ({run[:13]})" if name else run
        super().__init__(f"run {label} is not active: it has ended ({status})")


class DataflowInvalid(RecoverableError):
    """A dataflow file failed validation; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class NodeSpawnFailed(RecoverableError):
    """One node's process could not be started."""

    def __init__(self, node: str, cause: str) -> None:
        self.node = node
        super().__init__(f"node {node!r} could not be started: {cause}")


class ParamNotSet(RecoverableError):
    """A parameter was not set: the node refused it (its reason), or it did not answer."""

    def __init__(self, node: str, key: str, cause: str) -> None:
        self.node, self.key = node, key
        super().__init__(f"node {node!r}: parameter {key!r} not set: {cause}")


class StateWriteFailed(RecoverableError):
    """A write to the state store failed while the daemon runs (not at start: that is fatal)."""


class KeeperLost(RecoverableError):
    """A run's keeper process died or stopped answering its heartbeat; the run fails."""


class FatalError(FlowError):
    """An error after which the daemon stops every node and exits non-zero."""


class ControlSocketUnavailable(FatalError):
    """The control socket cannot be bound."""


class StateStoreUnusable(FatalError):
    """The SQLite state store cannot be opened or used."""


class BrokenInvariant(FatalError):
    """The daemon's own bookkeeping contradicts itself."""


FATAL_ERRORS: tuple[type[FatalError], ...] = (
    ControlSocketUnavailable,
    StateStoreUnusable,
    BrokenInvariant,
)
