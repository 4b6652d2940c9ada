"""A bad dataflow given to the daemon: every problem named, exit 2, nothing spawned or disturbed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import REPO, flow, start_stream

BAD = sorted(p for p in (REPO / "tests" / "data" / "bad").glob("*.yml") if p.name != "ok.yml")
LINE = re.compile(r"^(?P<file>[^:]+\.yml):(?P<line>\d+): (?P<rest>.+)$")


def test_bad_files_are_refused_while_a_run_streams(daemon: Path, tmp_path: Path) -> None:
    assert len(BAD) >= 20
    start_stream(daemon, tmp_path, "steady")
    # every third file through `flow start` (a process each); every file's own line is
    # checked in process by tests/unit/test_check.py
    for bad in BAD[::3]:
        done = flow("start", str(bad), "--detach", "--name", "bad", home=daemon)
        assert done.returncode == 2, (bad.name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        problems = [m for m in map(LINE.match, done.stderr.splitlines()) if m]
        assert problems, (bad.name, done.stderr)
        assert all(Path(m["file"]).name == bad.name for m in problems), done.stderr
    runs = [
        json.loads(line)
        for line in flow("list", "--all", "--json", home=daemon).stdout.splitlines()
    ]
    assert [r["name"] for r in runs] == ["steady"]  # no bad run was recorded, none spawned
    assert flow("stop", "steady", home=daemon).returncode == 0
    sink = flow("logs", "steady", "sink", home=daemon).stdout
    assert "gaps=0 repeats=0" in sink


def test_a_node_script_that_does_not_compile_is_refused_before_anything_runs(
    daemon: Path, tmp_path: Path
) -> None:
    """`flow start` and `flow run` refuse it in one `script:LINE:` line, as `flow check`
    does; nothing is spawned (before, every node ran and the broken one died with a
    SyntaxError traceback in its log)."""
    (tmp_path / "broken.py").write_text("from node_sdk import Node\nfor e in Node()\n    pass\n")
    (tmp_path / "fine.py").write_text("from node_sdk import Node\nfor e in Node():\n    pass\n")
    yml = tmp_path / "syntax.yml"
    yml.write_text("nodes:\n  - id: fine\n    path: fine.py\n    inputs:\n"
                   "      tick: flow/timer/millis/100\n"
                   "  - id: broken\n    path: broken.py\n")  # fmt: skip
    expected = f"{tmp_path / 'broken.py'}:2: syntax error: expected ':' (node 'broken')"
    for command in (("start", str(yml), "--detach", "--name", "syntax"), ("run", str(yml))):
        done = flow(*command, home=daemon)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
    listed = flow("list", "--all", "--json", home=daemon).stdout.splitlines()
    assert [json.loads(line)["name"] for line in listed] == []  # none recorded, none spawned
