"""Where a node finds the local daemon: the same folders as `daemon/paths.py` (SPEC 9).

node_sdk imports nothing of ours, so the little logic is duplicated here; a unit test
checks that both give the same paths.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

NODES_SOCKET: Final = "nodes"


def flow_home() -> Path:
    """The state folder: `$FLOW_HOME`, else `~/.local/state/flow`."""
    env = os.environ.get("FLOW_HOME")
    home = Path(env) if env else Path.home() / ".local" / "state" / "flow"
    return home.expanduser().resolve()


def socket_dir(home: Path) -> Path:
    """The daemon's private socket folder for `home`."""
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and os.access(runtime, os.W_OK):
        return Path(runtime) / f"flow-{digest}"
    return Path("/tmp") / f"flow-{os.getuid()}-{digest}"


def nodes_socket(home: Path) -> Path:
    """The socket file of the daemon's node channel."""
    return socket_dir(home) / NODES_SOCKET


def nodes_endpoint(home: Path) -> str:
    return f"ipc://{nodes_socket(home)}"
