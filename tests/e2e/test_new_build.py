"""`flow new` scaffolds that check and compile; `flow build` runs, fails and refuses well."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest
from helpers import REPO, flow, write_dataflow


def test_new_dataflow_scaffolds_a_valid_folder(tmp_path: Path, flow_home: Path) -> None:
    done = flow("new", "demo", home=flow_home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "demo"
    assert {p.name for p in folder.iterdir()} == {"dataflow.yml", "source.py", "sink.py"}
    for script in ("source.py", "sink.py"):
        py_compile.compile(str(folder / script), doraise=True)
    assert "flow run demo/dataflow.yml" in done.stdout
    checked = flow("check", "demo/dataflow.yml", home=flow_home, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    folder_given = flow("run", "demo", home=flow_home, cwd=tmp_path)  # its folder, not its file
    assert folder_given.returncode == 2
    assert folder_given.stderr.strip() == "error: demo is a folder; did you mean demo/dataflow.yml?"


def test_new_dataflow_runs_and_ends_by_itself(tmp_path: Path, flow_home: Path) -> None:
    assert flow("new", "demo", home=flow_home, cwd=tmp_path).returncode == 0
    done = flow("run", "demo/dataflow.yml", home=flow_home, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sink received 10" in done.stdout


def test_new_node_writes_a_template(tmp_path: Path, flow_home: Path) -> None:
    done = flow("new", "detector", "--kind", "node", home=flow_home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / "detector.py"
    py_compile.compile(str(script), doraise=True)
    assert "from node_sdk import Node" in script.read_text()


@pytest.mark.parametrize("kind", ["dataflow", "node"])
def test_new_refuses_an_existing_path(tmp_path: Path, flow_home: Path, kind: str) -> None:
    (tmp_path / ("taken" if kind == "dataflow" else "taken.py")).write_text("mine\n")
    done = flow("new", "taken", "--kind", kind, home=flow_home, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "already exists" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["../escape", "a/b", "-x", "", "x" * 65])
def test_new_refuses_a_bad_name(tmp_path: Path, flow_home: Path, name: str) -> None:
    done = flow("new", "--", name, home=flow_home, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


BUILD_YML = """\
nodes:
  - id: first
    path: node.py
    build: |
      echo one > first.txt
      echo two >> first.txt
    outputs: [out]
  - id: second
    path: node.py
    build: {second_build}
    inputs:
      x: first/out
  - id: third
    path: node.py
    inputs:
      x: first/out
"""
NODE = "from node_sdk import Node\n"


def test_build_runs_lines_in_the_yaml_folder(tmp_path: Path, flow_home: Path) -> None:
    yml = write_dataflow(
        tmp_path, BUILD_YML.format(second_build="touch second.txt"), {"node.py": NODE}
    )
    done = flow("build", str(yml), home=flow_home, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "first.txt").read_text() == "one\ntwo\n"
    assert (tmp_path / "second.txt").exists()
    assert "built 2 nodes" in done.stdout


def test_build_failure_names_the_node(tmp_path: Path, flow_home: Path) -> None:
    line = "echo compiling && echo broken header >&2 && exit 3"
    yml = write_dataflow(tmp_path, BUILD_YML.format(second_build=f"'{line}'"), {"node.py": NODE})
    done = flow("build", str(yml), home=flow_home)
    assert done.returncode == 1
    assert f"error: build of node 'second' failed: '{line}' exited 3" in done.stderr
    assert "broken header" in done.stderr
    assert "built" not in done.stdout.splitlines()[-1]


def test_build_refuses_an_invalid_file(tmp_path: Path, flow_home: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        "nodes:\n  - id: a\n    path: node.py\n    build: touch ran.txt\n    bogus: 1\n",
        {"node.py": NODE},
    )
    done = flow("build", str(yml), home=flow_home)
    assert done.returncode == 2
    assert "bogus" in done.stderr
    assert not (tmp_path / "ran.txt").exists()


def test_build_of_a_missing_file_is_bad_input(tmp_path: Path, flow_home: Path) -> None:
    done = flow("build", str(tmp_path / "nope.yml"), home=flow_home)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")


def test_build_lines_run_with_flows_own_python_first_on_path(
    tmp_path: Path, flow_home: Path
) -> None:
    import os
    import sys

    yml = write_dataflow(
        tmp_path,
        """\
        nodes:
          - id: a
            path: dynamic
            build: |
              command -v python
              python -c 'import sys; print("prefix", sys.prefix)'
              echo "venv=$VIRTUAL_ENV"
        """,
        {},
    )
    # a PATH where another python would come first, as in a shell outside the venv
    done = flow("build", str(yml), "-v", home=flow_home, env_extra={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    output = [line.strip() for line in done.stderr.splitlines()]
    assert os.path.join(os.path.dirname(sys.executable), "python") in output, output
    assert f"prefix {sys.prefix}" in output, output
    if sys.prefix != sys.base_prefix:
        assert f"venv={sys.prefix}" in output, output
