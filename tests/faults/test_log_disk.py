"""Disk full for node logs (matrix row 17), on a real tmpfs: whole lines only, every line
either written or counted dropped, and the count written once there is room again."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from fault_tools import runs, tmpfs
from helpers import NODES, flow

from daemon.keeper.logs import REOPEN_AFTER_S, NodeLog
from daemon.model.logformat import LogRecord


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # a torn one raises


@pytest.mark.usefixtures("daemon")
def test_row17_log_disk_full_counts_every_line(flow_home: Path, tmp_path: Path) -> None:
    yml = tmp_path / "chatty.yml"
    yml.write_text(
        f"nodes:\n  - id: chatty\n    path: {NODES}/chatty.py\n    env: {{LINES: 3000}}\n"
    )
    with tmpfs(flow_home / "runs", "size=256k,mode=0700"):
        done = flow("start", str(yml), "--attach", "--name", "c", home=flow_home, timeout=120)
        info = runs(flow_home)["c"]
        records = _records(next((flow_home / "runs").glob("*/logs/chatty.log")))
    assert done.returncode == 0
    assert info["status"] == "succeeded"
    dropped = int(info["degraded"].split("(")[1].split()[0])
    produced = 3001  # 3000 lines and "chatty done"
    written = [r for r in records if r["s"] == "stdout"]
    assert dropped > 0
    assert len(written) + dropped == produced, (len(written), dropped)


def test_row17_the_dropped_count_is_written_when_room_returns(flow_home: Path) -> None:
    folder = flow_home / "logs"
    with tmpfs(folder, "size=128k,mode=0700"):
        filler = folder / "filler"
        filler.write_bytes(bytes(64 * 1024))  # room to give back later
        log = NodeLog(path=folder / "n.log", node_id="n", on_failure=lambda _: None)
        line = LogRecord(time.time(), "stdout", "x" * 500)
        for _ in range(200):  # far more than the 64 KiB left
            log.write_all([line])
        assert log.dropped > 0
        written_before = len(_records(folder / "n.log"))
        dropped_before = log.dropped
        filler.unlink()
        time.sleep(REOPEN_AFTER_S + 0.1)  # writing is tried again after this long
        log.write_all([line])
        log.close()
        records = _records(folder / "n.log")
    assert written_before + dropped_before == 200  # whole lines, each written or counted
    assert records[-2]["m"] == f"{dropped_before} log line{'s' * (dropped_before != 1)} dropped"
    assert len(records) == written_before + 2
    assert records[-1]["m"] == "x" * 500


@pytest.mark.usefixtures("daemon")
def test_a_log_folder_deleted_while_written_is_made_again_and_said(
    flow_home: Path, tmp_path: Path
) -> None:
    """An attacker's finding: the keeper wrote on into the deleted files, `flow logs` showed
    nothing and the run looked healthy."""
    talker = tmp_path / "talker.sh"
    talker.write_text("#!/bin/sh\ni=0\nwhile [ $i -lt 400 ]; do echo line $i; i=$((i+1)); "
                      "sleep 0.05; done\n")  # fmt: skip
    talker.chmod(0o755)
    yml = tmp_path / "talk.yml"
    yml.write_text(f"nodes:\n  - id: talker\n    path: {talker}\n")
    assert flow("start", str(yml), "--detach", "--name", "t", home=flow_home).returncode == 0
    try:
        logs = next(iter((flow_home / "runs").glob("*/logs")), None)
        deadline = time.monotonic() + 15
        while logs is None or not (logs / "talker.log").exists():
            assert time.monotonic() < deadline, "no log"
            time.sleep(0.1)
            logs = next(iter((flow_home / "runs").glob("*/logs")), None)
        shutil.rmtree(logs)
        while not (logs / "talker.log").exists() or "degraded" not in runs(flow_home)["t"]:
            assert time.monotonic() < deadline + 15, "the log was not made again"
            time.sleep(0.2)
        assert "talker.log was deleted while written" in str(runs(flow_home)["t"]["degraded"])
        shown = flow("logs", "t", home=flow_home).stdout
        assert "talker | " in shown  # what came since is shown
        assert "line " in shown
    finally:
        flow("stop", "t", "--force", home=flow_home)
