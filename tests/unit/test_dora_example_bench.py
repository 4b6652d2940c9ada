"""bench/dora_examples: which of a dora checkout's dataflows are Python-only, and the judge."""

from __future__ import annotations

from pathlib import Path

from bench.dora_example_list import Example, select
from bench.dora_examples import judge


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_select_keeps_dataflows_of_python_scripts_only(tmp_path: Path) -> None:
    _write(tmp_path, "examples/py/dataflow.yml", "nodes:\n  - {id: a, path: a.py}\n"
           "  - {id: b, path: dynamic}\n")  # fmt: skip
    _write(tmp_path, "examples/rust/dataflow.yml", "nodes:\n  - {id: a, path: a.py}\n"
           "  - {id: b, path: ../../target/debug/b, build: cargo build}\n")  # fmt: skip
    _write(tmp_path, "examples/op/dataflow.yml", "nodes:\n  - {id: a, operator: {python: a.py}}\n")
    _write(tmp_path, "examples/mod/dataflow.yml", "nodes:\n  - {id: m, module: inner.yml}\n")
    _write(tmp_path, "examples/mod/inner.yml",
           "module: {name: m}\nnodes:\n  - {id: x, path: x.py}\n")  # fmt: skip
    _write(tmp_path, "tests/t/dataflow.yaml", "nodes:\n  - {id: a, path: a.py}\n")
    _write(tmp_path, "tests/t/node.yml", "id: filter\npath: filter.py\n")  # a node file
    assert select(tmp_path) == [
        "examples/mod/dataflow.yml", "examples/py/dataflow.yml", "tests/t/dataflow.yaml",
    ]  # fmt: skip


def test_judge_wants_every_expected_line_and_no_traceback() -> None:
    example = Example("x.yml", "says hi", expect=(r"hi \d",))
    assert judge(example, 0, "node | hi 3\n") == (True, "")
    assert judge(example, 1, "node | hi 3\n") == (False, "flow exited 1")
    assert judge(example, 0, "node | hello\n")[0] is False
    failed = judge(example, 0, "node | hi 3\nTraceback (most recent call last):\n")
    assert failed == (False, r"found in the output: Traceback \(most recent call last\)")
