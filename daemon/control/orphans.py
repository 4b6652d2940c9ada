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
from daemon.run import ipc_files
from node_sdk import paths, private

QUIT_LINGER_MS = 500  # long enough for `quit` to reach a keeper that is alive


def end_orphaned_keepers(home: Path) -> int:
    """Tell every run keeper still serving `home` to end; how many were told."""
    folder = paths.socket_dir(home)
    try:
        private.check_private_dir(folder)
    except private.NotPrivate:
        return 0  # another user's folder: nothing in it is ours to tell or remove
    for name in (paths.CONTROL_SOCKET, paths.NODES_SOCKET):
        if ipc_files.is_stale(folder / name):  # a live one is someone's, even now
            with contextlib.suppress(OSError):
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
