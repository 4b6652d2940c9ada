"""`write_atomic`: the old content or all of the new, never a part (the run's dataflow copy)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from daemon.files import write_atomic


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "dataflow.yml"
    write_atomic(target, "nodes: [old]\n")
    assert target.stat().st_mode & 0o777 == 0o600

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "nodes: [new, " + "x" * 100_000)
    assert target.read_text() == "nodes: [old]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dataflow.yml"]  # no temp file left
