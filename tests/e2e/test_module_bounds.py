"""A dataflow whose modules fan out (nine small files aiming at 20^8 nodes) is refused in one
line by `flow check`, and by the daemon for `flow start`/`flow run`, which stays usable."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import flow, write_module_fan_out

BOUND_S = 60.0  # a safety bound on every command, never an assertion about speed
PROBLEM = re.compile(
    r"^(?P<file>/\S+\.yml):3: nodes\[0\]\.module: the modules read more than \d+ module "
    r"files, each read counted \(crossed at (?P<at>/\S+\.yml):\d+: nodes\[\d+\] "
    r"\(m\d+, module l\d\.yml\)\)$"
)


def the_one_problem(stderr: str, top: Path) -> None:
    assert "Traceback" not in stderr
    header, problem = stderr.splitlines()
    assert header == "error: the dataflow is invalid (1 problem)", stderr
    match = PROBLEM.match(problem)
    assert match, problem
    assert match["file"] == str(top)
    assert Path(match["at"]).parent == top.parent


def test_flow_check_refuses_a_module_fan_out_in_one_line(flow_home: Path, tmp_path: Path) -> None:
    top = write_module_fan_out(tmp_path)
    done = flow("check", str(top), home=flow_home, timeout=BOUND_S)
    assert done.returncode == 2, done.stdout + done.stderr
    the_one_problem(done.stderr, top)


def test_the_daemon_refuses_a_module_fan_out_and_stays_usable(
    daemon: Path, tmp_path: Path
) -> None:
    """Before, the daemon's parse thread grew for minutes (55 -> 341 MB) and `flow down`
    afterwards said the daemon was still running."""
    top = write_module_fan_out(tmp_path)
    for command in (("start", str(top), "--detach", "--name", "fan"), ("run", str(top))):
        done = flow(*command, home=daemon, timeout=BOUND_S)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        the_one_problem(done.stderr, top)
    listed = flow("list", "--all", "--json", home=daemon, timeout=BOUND_S)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == []
    down = flow("down", home=daemon, timeout=BOUND_S)
    assert down.returncode == 0, down.stdout + down.stderr
