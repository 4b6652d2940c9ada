"""`flow check` as a user runs it (one process per command); the rules are tested in
process by tests/unit/test_check.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, flow

BAD = REPO / "tests" / "data" / "bad"


def test_check_smoke(flow_home: Path) -> None:
    bad = flow("check", str(BAD / "timer_unit.yml"), home=flow_home)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    header, problem = bad.stderr.splitlines()
    assert header == "error: the dataflow is invalid (1 problem)"  # as flow start says it
    assert problem.startswith(f"{BAD / 'timer_unit.yml'}:6: nodes[0].inputs.tick: ")
    assert "Traceback" not in bad.stderr
    good = flow("check", str(BAD / "ok.yml"), home=flow_home)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "ok: 2 nodes, 1 connection"


def test_a_machine_no_daemon_serves_is_refused_at_start(daemon: Path, tmp_path: Path) -> None:
    node = tmp_path / "n.py"
    node.write_text("print('hi')\n")
    yml = tmp_path / "far.yml"
    yml.write_text(f"nodes:\n  - id: far\n    path: {node}\n    deploy:\n      machine: mars\n")
    done = flow("start", str(yml), "--detach", home=daemon)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{yml}:5: nodes[0].deploy.machine" in done.stderr
    assert "mars" in done.stderr


@pytest.mark.parametrize("command", ["check", "start", "run", "graph", "build"])
def test_a_missing_file_gets_one_message_from_every_command(
    flow_home: Path, command: str
) -> None:
    done = flow(command, "nothere.yml", home=flow_home)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: no such dataflow file: nothere.yml"]


def test_a_yaml_structure_error_speaks_plainly(flow_home: Path, tmp_path: Path) -> None:
    yml = tmp_path / "dataflow.yml"
    # `path` indented like the list item's keys' parent: the mistake of the issue
    yml.write_text("nodes:\n  - id: a\n    path: dynamic\n    id: b\n  path: c\n")
    done = flow("check", "dataflow.yml", home=flow_home, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: the dataflow is invalid (1 problem)",
        "dataflow.yml:5: invalid YAML: bad indentation: `path:` is left of `id:` on line 4 "
        "(the keys of one mapping line up; a new list item starts with `- `)",
    ]
    yml.write_text("nodes:\n  - id: a\n    path dynamic\n    outputs: [x]\n")
    colon = flow("check", "dataflow.yml", home=flow_home, cwd=tmp_path)
    assert colon.stderr.splitlines()[1] == (
        "dataflow.yml:3: invalid YAML: a key without its `:` (write `key: value`) "
        "near `path dynamic`"
    )
    # a key indented deeper than the one above it (a new user's): no second `: ` there
    yml.write_text("nodes:\n  - id: a\n      path: dynamic\n")
    deeper = flow("check", "dataflow.yml", home=flow_home, cwd=tmp_path)
    assert deeper.stderr.splitlines()[1] == (
        "dataflow.yml:3: invalid YAML: a key indented deeper than the key above it (or a "
        "value with `: ` in it: quote it) near `path: dynamic`"
    )


def test_check_compiles_python_nodes(flow_home: Path, tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("print('fine')\n")
    (tmp_path / "bad.py").write_text("import sys\n\ndef f(:\n    pass\n")
    yml = tmp_path / "dataflow.yml"
    yml.write_text(
        "nodes:\n  - id: good\n    path: good.py\n    outputs: [x]\n"
        "  - id: bad\n    path: bad.py\n    inputs:\n      x: good/x\n"
    )
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2
    header, problem = done.stderr.splitlines()
    assert header == "error: the dataflow is invalid (1 problem)"
    assert problem.startswith(f"{tmp_path / 'bad.py'}:3: syntax error: ")
    assert problem.endswith("(node 'bad')")
    assert not (tmp_path / "__pycache__").exists()  # compiled in memory, nothing written
    (tmp_path / "bad.py").write_text("print('fixed')\n")
    assert flow("check", str(yml), home=flow_home).returncode == 0


@pytest.mark.parametrize("command", ["check", "run", "start"])
def test_a_nodes_script_given_for_the_dataflow_says_so(
    flow_home: Path, tmp_path: Path, command: str
) -> None:
    (tmp_path / "talker.py").write_text("print('hello')\n")
    done = flow(command, "talker.py", home=flow_home, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: talker.py is a Python script: give the dataflow's YAML file, whose nodes "
        "name their scripts in `path:`"
    ]
