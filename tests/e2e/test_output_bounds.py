"""What a node writes cannot grow flow's own records: a failed node's stderr tail is cut
per line and in all (daemon.model.stderr_tail), so `flow list` stays a small reply the
daemon answers; a node's log files rotate at `log_max_bytes` counted in bytes as written."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

from helpers import flow, wait_for, write_dataflow

from daemon.model.pids import recorded_pid
from daemon.model.stderr_tail import LINE_BYTES, TAIL_BYTES

NODES_FAILING = 6  # 20 whole 70 KB lines each: an 8 MB list reply, over the 4 MiB a client gets
ERRTAIL = (
    "import os\n[os.write(2, b'E' * 70000 + b'\\n') for _ in range(25)]\nraise SystemExit(1)\n"
)


def _run_status(home: Path) -> str | None:
    with sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT status FROM runs ORDER BY created DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def test_long_stderr_lines_leave_flow_list_small_and_answered(daemon: Path, tmp_path: Path) -> None:
    nodes = "".join(
        f"  - id: n{i}\n    path: {sys.executable}\n    args: errtail.py\n    connects: false\n"
        for i in range(NODES_FAILING)
    )
    yml = write_dataflow(tmp_path, "nodes:\n" + nodes, {"errtail.py": ERRTAIL})
    started = flow("start", str(yml), "--detach", "--name", "et", home=daemon)
    assert started.returncode == 0, started.stderr
    wait_for(lambda: _run_status(daemon) == "failed", "the run failed")

    listed = flow("list", "--all", home=daemon, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "not running" not in listed.stderr, listed.stderr  # the daemon answered
    assert "node n0 exited 1: EEEE" in listed.stdout
    assert len(listed.stdout) < 64 * 1024

    as_json = flow("list", "--all", "--json", home=daemon, timeout=30)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stderr == ""
    assert len(as_json.stdout) < NODES_FAILING * TAIL_BYTES + 16 * 1024
    (run,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert run["status"] == "failed"
    for node in run["nodes"]:
        tail = node["stderr_tail"]
        assert tail, node
        assert sum(len(line.encode()) + 1 for line in tail) <= TAIL_BYTES
        last = tail[-1]
        assert last.startswith("E" * 900)
        cut_line = re.fullmatch(r"(E+) \[… (\d+) bytes cut\]", last)
        assert cut_line, last[-60:]
        head, cut = cut_line.groups()
        # the keeper cuts a line at 64 KiB while no newline has come: it may be read as two
        assert len(head) + int(cut) in (70000, 65536, 70000 - 65536), last[-60:]
        assert len(last.encode()) <= LINE_BYTES
    # what the store keeps is as small (it grew by 56 MB for 40 such nodes)
    assert (daemon / "state.db").stat().st_size < 1 << 20


def test_a_list_reply_the_daemon_does_not_give_is_not_no_daemon(daemon: Path) -> None:
    """The CLI falls back to reading the store only when no daemon is there: a daemon
    that is alive but does not answer in time is said to be so, in one line."""
    pid = recorded_pid(daemon)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, and answering nothing
    try:
        listed = flow("list", "--all", home=daemon, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert listed.returncode == 3, listed.stdout + listed.stderr
    assert "not running" not in listed.stderr, listed.stderr
    assert listed.stdout == ""
    lines = listed.stderr.strip().splitlines()
    assert len(lines) == 1, listed.stderr
    assert "the flow daemon is running but did not answer list within 10 s" in lines[0]


EMOJI = "import sys\nfor i in range(3000):\n    print('\\U0001f600' * 100)\n"
BINARY = "import os\nfor i in range(3000):\n    os.write(1, bytes(range(128, 256)) * 2 + b'\\n')\n"


def test_log_files_rotate_at_their_size_in_bytes(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        f"nodes:\n  - id: emoji\n    path: {sys.executable}\n    args: emoji.py\n"
        f"    connects: false\n  - id: binary\n    path: {sys.executable}\n"
        "    args: binary.py\n    connects: false\n",
        {"emoji.py": EMOJI, "binary.py": BINARY},
    )
    done = flow("run", str(yml), home=flow_home, env_extra={"FLOW_LOG_MAX_BYTES": "64KiB"},
                timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (logs,) = (flow_home / "runs").glob("*/logs")
    for node in ("emoji", "binary"):
        files = sorted(logs.glob(f"{node}.log*"))
        assert len(files) == 4, files  # rotated: the log and 3 older files
        sizes = [f.stat().st_size for f in files]
        assert max(sizes) <= 64 * 1024, (node, sizes)
        assert min(sizes[1:]) > 60 * 1024, (node, sizes)  # full files, not one line each
