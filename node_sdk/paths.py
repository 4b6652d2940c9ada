"""Where flow keeps its files and sockets (SPEC 9): the one paths module of daemon, CLI and SDK.

It lives in `node_sdk` because the SDK imports nothing of ours; the daemon and the CLI
import it from here (`node_sdk/__init__` is lazy, so this costs no zmq import).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Final

CONTROL_SOCKET: Final = "control"
NODES_SOCKET: Final = "nodes"


def flow_home() -> Path:
    """The state folder: `$FLOW_HOME`, else `~/.local/state/flow`."""
    env = os.environ.get("FLOW_HOME")
    home = Path(env) if env else Path.home() / ".local" / "state" / "flow"
    return home.expanduser().resolve()


def socket_dir(home: Path) -> Path:
    """A private folder short enough for the 107-byte `ipc://` limit, unique per home."""
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _runtime_dir_is_ours(runtime):
        return Path(runtime) / f"flow-{digest}"
    return Path("/tmp") / f"flow-{os.getuid()}-{digest}"


def _runtime_dir_is_ours(runtime: str) -> bool:
    """An XDG_RUNTIME_DIR this user owns, that nobody else can rename things in.

    One kept by `sudo -E`, say, is another user's: they could swap our folder in it.
    """
    try:
        info = os.stat(runtime)
    except OSError:
        return False
    open_to_others = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not open_to_others
        and os.access(runtime, os.W_OK)
    )


_OBSERVER = re.compile(r"obs-([0-9]{1,10})-[0-9a-f]{6}")


def observer_endpoint(sockets: Path, pid: int, token: str) -> str:
    """Where `flow topic echo|hz` binds its observer socket, in the daemon's folder."""
    return f"ipc://{sockets / f'obs-{pid}-{token}'}"


def observer_socket(sockets: Path, endpoint: str) -> Path | None:
    """The socket file an observer endpoint names, if it is one (`observer_endpoint`'s form,
    directly in `sockets`); None for anything else, so a lease never unlinks another file."""
    path = Path(endpoint.removeprefix("ipc://"))
    if not endpoint.startswith("ipc://") or path.parent != sockets:
        return None
    return path if _OBSERVER.fullmatch(path.name) else None


def observer_sockets(sockets: Path) -> dict[Path, int]:
    """Every observer socket file directly in `sockets`, with the pid in its name."""
    found: dict[Path, int] = {}
    with contextlib.suppress(OSError):
        for path in sockets.iterdir():
            match = _OBSERVER.fullmatch(path.name)
            if match:
                found[path] = int(match.group(1))
    return found


def control_endpoint(home: Path) -> str:
    return f"ipc://{socket_dir(home) / CONTROL_SOCKET}"


def nodes_socket(home: Path) -> Path:
    """The socket file of the daemon's node channel."""
    return socket_dir(home) / NODES_SOCKET


def nodes_endpoint(home: Path) -> str:
    return f"ipc://{nodes_socket(home)}"


def run_short_id(run_id: str) -> str:
    """12 hex digits naming a run's socket folder and shared-memory segments.

    The last 12 hex digits of its UUIDv7, which are random: the first 12 are its
    millisecond timestamp, shared by runs created in the same millisecond. Short, for the
    107-byte `ipc://` path limit.
    """
    return run_id.replace("-", "")[-12:]


def run_socket_dir(sockets: Path, run_id: str) -> Path:
    """A run's own folder of data and keeper sockets, inside a daemon's (or `flow run`'s)."""
    return sockets / run_short_id(run_id)


def state_db(home: Path) -> Path:
    return home / "state.db"


def state_reserve(home: Path) -> Path:
    """Room kept for the state store's writes on a full disk (daemon/run/store_reserve.py)."""
    return home / "state.reserve"


def daemon_log(home: Path) -> Path:
    return home / "daemon.log"


def daemon_pid_file(home: Path) -> Path:
    return home / "daemon.pid"


def daemon_lock_file(home: Path) -> Path:
    """Locked (`flock`) by the daemon for its whole life: one daemon per home (SPEC 10)."""
    return home / "daemon.lock"


def run_dir(home: Path, run_id: str) -> Path:
    return home / "runs" / run_id


def dataflow_copy(home: Path, run_id: str) -> Path:
    """The dataflow file as the run was started (what `flow restart` and recovery read)."""
    return run_dir(home, run_id) / "dataflow.yml"


def log_dir(home: Path, run_id: str) -> Path:
    return run_dir(home, run_id) / "logs"


def node_log(home: Path, run_id: str, node_id: str) -> Path:
    # node ids are validated against [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, so they cannot escape
    return log_dir(home, run_id) / f"{node_id}.log"


def home_of_node_log(path: Path) -> Path:
    """The FLOW_HOME a `node_log` path is in (a shorter path: its own folder)."""
    return path.parents[3] if len(path.parents) > 3 else path.parent
