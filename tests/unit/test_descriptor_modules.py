"""Module expansion is bounded as it grows: nodes made, module files read and their bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import write_module_fan_out

from daemon.model.descriptor import MAX_NODES, parse_dataflow
from daemon.model.descriptor_modules import MAX_MODULE_LOADS, MAX_MODULE_TOTAL_BYTES
from daemon.model.errors import DataflowInvalid

SAFETY_S = 10.0  # only a net for a runaway expansion (20^8 nodes), never a speed claim


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DataflowInvalid) as caught:
        parse_dataflow(path, check_paths=False)
    return caught.value.problems


def module_nodes(count: int, target: str, first: int = 0) -> str:
    return "".join(f"  - id: m{i}\n    module: {target}\n" for i in range(first, count))


def test_a_fan_out_of_modules_stops_at_the_load_bound_in_one_line(tmp_path: Path) -> None:
    """Nine files under 1 KB aim at 20^8 nodes: the check stops at the module file read
    past the bound, naming the module node that asked for it, instead of growing for minutes."""
    top = write_module_fan_out(tmp_path)
    assert max(p.stat().st_size for p in tmp_path.iterdir()) < 1000
    began = time.monotonic()
    problems = problems_of(top)
    assert time.monotonic() - began < SAFETY_S
    # depth first: 8 reads down to l8, then l7's other 19 module nodes read l8, and so on
    assert problems == [
        f"{top}:3: nodes[0].module: the modules read more than {MAX_MODULE_LOADS} module "
        f"files, each read counted (crossed at {tmp_path}/l7.yml:40: nodes[18] "
        "(m18, module l8.yml))"
    ]


def test_the_node_bound_is_crossed_while_expanding(tmp_path: Path) -> None:
    """Two reads of one module of 600 plain nodes: the 1025th node stops the expansion."""
    (tmp_path / "wide.yml").write_text(
        "module:\n  name: wide\nnodes:\n"
        + "".join(f"  - id: n{i}\n    path: x.py\n" for i in range(600))
    )
    top = tmp_path / "df.yml"
    top.write_text("nodes:\n  - id: keep\n    path: x.py\n" + module_nodes(2, "wide.yml"))
    assert problems_of(top) == [
        f"{top}:7: nodes[2].module: the modules expand to more than the {MAX_NODES} nodes a "
        f"dataflow may hold (crossed at {top}:6: nodes[2] (m1, module wide.yml))"
    ]


def test_the_same_empty_module_read_again_and_again_is_bounded(tmp_path: Path) -> None:
    """A module with no nodes makes nothing, but each read of it still counts."""
    (tmp_path / "empty.yml").write_text("module:\n  name: empty\nnodes: []\n")
    top = tmp_path / "df.yml"
    top.write_text("nodes:\n" + module_nodes(MAX_MODULE_LOADS + 10, "empty.yml"))
    line = 2 + 2 * MAX_MODULE_LOADS
    assert problems_of(top) == [
        f"{top}:{line + 1}: nodes[{MAX_MODULE_LOADS}].module: the modules read more than "
        f"{MAX_MODULE_LOADS} module files, each read counted (crossed at {top}:{line}: "
        f"nodes[{MAX_MODULE_LOADS}] (m{MAX_MODULE_LOADS}, module empty.yml))"
    ]


def test_the_bytes_of_module_files_read_are_summed(tmp_path: Path) -> None:
    """A large module file (comments, under the one-file limit) read again: its bytes add up
    before it is parsed again."""
    padding = "# " + "x" * 98 + "\n"
    text = "module:\n  name: big\nnodes:\n  - id: n\n    path: x.py\n"
    text += padding * (700_000 // len(padding))
    (tmp_path / "big.yml").write_text(text)
    reads = MAX_MODULE_TOTAL_BYTES // len(text.encode())
    top = tmp_path / "df.yml"
    top.write_text("nodes:\n" + module_nodes(reads + 1, "big.yml"))
    line = 2 + 2 * reads
    assert problems_of(top) == [
        f"{top}:{line + 1}: nodes[{reads}].module: the module files read add up to more than "
        f"{MAX_MODULE_TOTAL_BYTES} bytes, each read counted (crossed at {top}:{line}: "
        f"nodes[{reads}] (m{reads}, module big.yml))"
    ]


def test_nested_modules_up_to_the_node_bound_expand(tmp_path: Path) -> None:
    """4 module nodes, each reading a module of 4 module nodes, each reading 64 plain nodes:
    exactly MAX_NODES nodes, all there, each with its full nested id."""
    (tmp_path / "leaf.yml").write_text(
        "module:\n  name: leaf\nnodes:\n"
        + "".join(f"  - id: n{i}\n    path: x.py\n" for i in range(64))
    )
    mid = "module:\n  name: mid\nnodes:\n" + module_nodes(4, "leaf.yml")
    (tmp_path / "mid.yml").write_text(mid)
    top = tmp_path / "df.yml"
    top.write_text("nodes:\n" + module_nodes(4, "mid.yml"))
    dataflow = parse_dataflow(top, check_paths=False)
    assert len(dataflow.nodes) == MAX_NODES == 4 * 4 * 64
    assert dataflow.nodes[-1].id == "m3.m3.n63"
