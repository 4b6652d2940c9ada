"""`flow topic echo|hz` binds its observer socket first: with no socket folder there is no
daemon (exit 3, the usual line); any other failure to bind is said as it is (it was said
to be an unreachable daemon whatever the cause)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import zmq

from cli.commands.topic_watch import Observer
from cli.errors import UNREACHABLE, CliError, DaemonUnreachable
from node_sdk import paths


def test_no_socket_folder_is_an_unreachable_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "home"))
    with pytest.raises(DaemonUnreachable) as raised:
        Observer("run", "node/out")
    assert raised.value.status == UNREACHABLE


def test_another_bind_failure_is_said_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    paths.socket_dir(home).mkdir(parents=True, mode=0o700)

    def refuse(self: Any, endpoint: str) -> None:
        raise zmq.ZMQError(errno.EMFILE)

    monkeypatch.setattr(zmq.Socket, "bind", refuse)
    with pytest.raises(CliError) as raised:
        Observer("run", "node/out")
    assert not isinstance(raised.value, DaemonUnreachable)
    assert raised.value.message.startswith("cannot listen on ipc://")
    assert raised.value.message.endswith("for the topic: Too many open files")
