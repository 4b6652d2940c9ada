"""Run ids and the short id that names a run's sockets and shared-memory segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.keeper.shm_cleanup import remove_run_segments
from daemon.run import runtime
from node_sdk import paths
from node_sdk.shm import run_prefix


def test_runs_created_in_the_same_millisecond_get_their_own_sockets_and_segments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runtime.time, "time_ns", lambda: 1_700_000_000_123_456_789)
    first, second = runtime.new_run_id(), runtime.new_run_id()
    assert first[:13] == second[:13]  # the same timestamp
    sockets = paths.socket_dir(tmp_path / "home")
    assert paths.run_socket_dir(sockets, first) != paths.run_socket_dir(sockets, second)
    assert run_prefix(first) != run_prefix(second)
    for run_id in (first, second):
        (tmp_path / f"{run_prefix(run_id)}seg").write_bytes(b"x")
    assert remove_run_segments(first, shm_dir=str(tmp_path)) == 1
    assert (tmp_path / f"{run_prefix(second)}seg").exists()


def test_the_short_id_is_short_and_hex() -> None:
    short = paths.run_short_id(runtime.new_run_id())
    assert len(short) == 12
    int(short, 16)
