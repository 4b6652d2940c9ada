"""Every example under dataflows/ is complete: it parses, its nodes exist and compile."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "dataflows").glob("*/dataflow.yml"))


def _ids(path: Path) -> str:
    return path.parent.name


def test_the_documented_examples_exist() -> None:
    names = {p.parent.name for p in EXAMPLES}
    assert {"quickstart", "numpy-frames", "arrow-struct"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
def test_example_parses(path: Path) -> None:
    from daemon.model.descriptor import parse_dataflow

    dataflow = parse_dataflow(path)
    assert dataflow.nodes
    for node in dataflow.nodes:
        assert node.id


@pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
def test_example_nodes_are_python_that_compiles(path: Path) -> None:
    scripts = sorted(path.parent.glob("*.py"))
    assert scripts, f"no node scripts beside {path}"
    for script in scripts:
        tree = ast.parse(script.read_text(), filename=str(script))
        imports = {
            alias.name
            for stmt in ast.walk(tree)
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "node_sdk"
            for alias in stmt.names
        }
        assert "Node" in imports, f"{script.name} does not import Node from node_sdk"


@pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
def test_example_has_a_readme(path: Path) -> None:
    assert (path.parent / "README.md").read_text().strip()
