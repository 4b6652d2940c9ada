"""`connects`: which nodes the start barrier waits for, as written or as inferred."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from daemon.model.descriptor import parse_dataflow
from daemon.model.errors import DataflowInvalid


def script(folder: Path, name: str, first_line: str) -> None:
    path = folder / name
    path.write_text(first_line + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def connects(tmp_path: Path, node: str) -> bool:
    """`connects` of node `a`, written with `node`'s keys, next to a `sink` reading it if
    it declares an output `out`."""
    script(tmp_path, "ticker.sh", "#!/bin/sh")
    script(tmp_path, "py-node", "#!/usr/bin/env python3")
    (tmp_path / "node.py").write_text("")
    body = textwrap.indent(textwrap.dedent(node).strip(), "    ")
    text = f"nodes:\n  - id: a\n{body}\n"
    path = tmp_path / "df.yml"
    path.write_text(text)
    return parse_dataflow(path).node("a").connects


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        # a program that is not Python, with nothing the SDK would serve: a process node
        ("path: ticker.sh", False),
        ("path: sleep\nargs: '40'", False),
        ("path: ticker.sh\noutputs: [lines]\nsend_stdout_as: lines", False),
        # Python: a file, an interpreter, a `#!` naming one, a command given a .py file
        ("path: node.py", True),
        ("path: python3\nargs: -m mynode", True),
        ("path: py-node", True),
        ("path: sh\nargs: node.py", True),
        # inputs (timers too: they tick in the SDK) or an output the node sends itself
        ("path: ticker.sh\ninputs: {tick: dora/timer/millis/10}", True),
        ("path: ticker.sh\noutputs: [lines, other]\nsend_stdout_as: lines", True),
        ("path: ticker.sh\noutputs: [out]", True),
        ("path: dynamic", True),
        # as written
        ("path: ticker.sh\nconnects: true", True),
        ("path: node.py\nconnects: false", False),
    ],
)
def test_inferred_and_written(tmp_path: Path, node: str, expected: bool) -> None:
    assert connects(tmp_path, node) is expected


def test_a_node_that_does_not_connect_cannot_have_what_the_sdk_serves(tmp_path: Path) -> None:
    script(tmp_path, "rec.sh", "#!/bin/sh")
    path = tmp_path / "df.yml"
    path.write_text(
        "nodes:\n"
        "  - id: rec\n    path: rec.sh\n    connects: false\n"
        "    inputs: {tick: dora/timer/millis/100}\n"
        "    outputs: [lines, other]\n    send_stdout_as: lines\n"
        "  - id: d\n    path: dynamic\n    connects: false\n"
        "  - id: c\n    path: rec.sh\n    connects: maybe\n"
    )
    with pytest.raises(DataflowInvalid) as info:
        parse_dataflow(path)
    assert info.value.problems == [
        f"{path}:4: nodes[0].connects: a node that does not connect cannot receive: "
        "it has inputs (tick)",
        f"{path}:4: nodes[0].connects: a node that does not connect cannot send on other "
        "(only its send_stdout_as output is sent for it)",
        f"{path}:10: nodes[1].connects: a dynamic node always connects "
        "(it attaches through the node SDK)",
        f"{path}:13: nodes[2].connects: expected true or false, got a string ('maybe')",
    ]
