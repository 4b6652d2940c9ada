"""Side work that fails (full disk, unwritable logs) never changes a run's result (SPEC 7.3)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from fault_tools import runs, tmpfs
from helpers import NODES, flow

CHATTY = f"""
nodes:
  - id: chatty
    path: {NODES}/chatty.py
    env: {{LINES: 3000}}
"""


def attached_run(home: Path, yml: Path, name: str) -> subprocess.CompletedProcess[str]:
    return flow("start", str(yml), "--attach", "--name", name, home=home, timeout=120)


@pytest.mark.parametrize(
    ("fault", "options", "cause"),
    [
        ("full disk", "size=64k,mode=0700", "No space left on device"),
        ("unwritable logs", "ro,mode=0700", "Read-only file system"),
    ],
)
def test_log_failure_leaves_the_result_alone(
    daemon: Path, tmp_path: Path, fault: str, options: str, cause: str
) -> None:
    yml = tmp_path / "chatty.yml"
    yml.write_text(CHATTY)
    healthy = attached_run(daemon, yml, "healthy")
    assert healthy.returncode == 0, healthy.stderr
    with tmpfs(daemon / "runs", options):
        faulty = attached_run(daemon, yml, "faulty")
        listed = flow("list", "--all", home=daemon)
        info = runs(daemon)
    assert faulty.returncode == healthy.returncode  # same result, same exit code
    assert info["faulty"]["status"] == info["healthy"]["status"] == "succeeded"
    # one part per cause ("recording: ...; logs: ..."): none hides another
    assert "warning: degraded: " in faulty.stderr, faulty.stderr
    assert f"logs: {cause}" in faulty.stderr, faulty.stderr
    assert f"logs: {cause}" in info["faulty"]["degraded"]
    assert re.search(r"\(\d+ log lines? dropped\)", info["faulty"]["degraded"])
    assert "degraded" in listed.stdout
    assert info["healthy"]["degraded"] is None
