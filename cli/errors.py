"""The CLI's errors, each carrying the exit status `flow` ends with (SPEC 8).

CliError                 exit `status` (1 failed, 2 bad input)
├── DaemonUnreachable    exit 3: no socket, or no reply in time
│   └── DaemonNoReply    the daemon is running, but its reply did not come in time
└── DaemonError          exit 1, or 2 for `BadRequest` / `DataflowInvalid` replies
"""

from __future__ import annotations

__all__ = [
    "BAD_INPUT",
    "FAILED",
    "OK",
    "UNREACHABLE",
    "CliError",
    "DaemonError",
    "DaemonNoReply",
    "DaemonUnreachable",
    "dataflow_invalid",
]

OK = 0
FAILED = 1
BAD_INPUT = 2
UNREACHABLE = 3

# daemon error kinds that mean "the user asked for something malformed"
_BAD_INPUT_KINDS = frozenset({"BadRequest", "DataflowInvalid"})


class CliError(Exception):
    """An error `flow` reports as one `error: ...` line and exits with `status`."""

    def __init__(self, message: str, status: int = FAILED, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or []  # extra lines printed after the error line


class DaemonUnreachable(CliError):
    """The daemon's control socket is missing or nothing answered in time."""

    def __init__(self, endpoint: str):
        super().__init__(f"cannot reach the flow daemon at {endpoint}: run flow up", UNREACHABLE)
        self.endpoint = endpoint


class DaemonNoReply(DaemonUnreachable):
    """The daemon's process is alive, but no reply (or only a cut one) came in time: a
    command that reads the store instead when no daemon runs must not do so then."""

    def __init__(self, endpoint: str, why: str):
        super().__init__(endpoint)
        self.message = f"the flow daemon is running but {why}: see flow status and its log"
        self.args = (self.message,)


class DaemonError(CliError):
    """The daemon answered `ok: false`; `kind` is the daemon's error class name."""

    def __init__(self, kind: str, message: str):
        lines = message.splitlines() or [""]
        status = BAD_INPUT if kind in _BAD_INPUT_KINDS else FAILED
        if kind == "DataflowInvalid":
            super().__init__(_invalid_summary(len(lines)), status, details=lines)
        else:
            super().__init__(lines[0], status, details=lines[1:])
        self.kind = kind


def _invalid_summary(n: int) -> str:
    return f"the dataflow is invalid ({n} problem{'s' if n != 1 else ''})"


def dataflow_invalid(problems: list[str]) -> CliError:
    """The error of an invalid dataflow, worded as `flow start` reports the daemon's."""
    return CliError(_invalid_summary(len(problems)), BAD_INPUT, details=problems)


def path_text(path: str, shown: str = "") -> str:
    """`path`, refused (BAD_INPUT) when it is not UTF-8: a command-line argument that is not
    holds surrogates (Python's surrogateescape), which no request or store can carry.
    `shown` goes before it in the error (an option's name)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise CliError(f"{shown}{path!r}: a path that is not valid UTF-8 (flow keeps paths "
                       "as text)", BAD_INPUT) from None  # fmt: skip
    return path


def run_name(name: str | None) -> str | None:
    """`--name`'s value, refused (BAD_INPUT) when it cannot be a run name: terminal escapes,
    newlines, an empty or blank name, or one that reads as a run id (run_names.py)."""
    from daemon.model.run_names import refusal

    if (why := refusal(name)) is not None:
        raise CliError(f"--name {why}", BAD_INPUT)
    return name
