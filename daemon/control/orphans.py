"""Ending run keepers that no daemon supervises: `python -m daemon end-orphans`.

A daemon killed (SIGKILL, crash) leaves each run's keeper serving its nodes for
`daemon_grace`, so that a daemon back in time re-adopts them (SPEC 7.4). `flow down` with
no daemon alive asks for them to end now instead: this runs as its own short process
(the CLI reaches daemon code only through the control protocol or a `python -m` entry),
tells every keeper of the home to stop its nodes and exit, and removes the dead daemon's
socket files.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import zmq

from daemon.model.keeper_messages import Quit, encode
from node_sdk import paths

QUIT_LINGER_MS = 500  # long enough for `quit` to reach a keeper that is alive


def end_orphaned_keepers(home: Path) -> int:
    """Tell every run keeper still serving `home` to end; how many were told."""
    folder = paths.socket_dir(home)
    for name in (paths.CONTROL_SOCKET, paths.NODES_SOCKET):
        with contextlib.suppress(OSError):
            if (folder / name).is_socket():
                (folder / name).unlink()
    keepers = sorted(folder.glob("*/keeper")) if folder.is_dir() else []
    if not keepers:
        return 0
    context = zmq.Context()
    try:
        for keeper in keepers:
            socket = context.socket(zmq.DEALER)
            socket.connect(f"ipc://{keeper}")
            socket.send(encode(Quit()), zmq.NOBLOCK)
            socket.close(linger=QUIT_LINGER_MS)
    finally:
        context.term()
    return len(keepers)
