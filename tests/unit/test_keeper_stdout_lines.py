"""The keeper's reading of a node's stdout: a logging record written into a half-printed
line is taken out of it whole, however the pipe's reads cut them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.keeper.children import Child
from daemon.keeper.logs import NodeLog
from daemon.model.logformat import LOG_MARKER, parse_line
from node_sdk import logbridge

STDOUT = 99  # the pipe's number: only the child's own maps read it


def _records(tmp_path: Path, data: bytes, read: int) -> list[tuple[str, str]]:
    process = subprocess.Popen(["true"])
    process.wait()
    log = NodeLog(tmp_path / "n.log", "n", on_failure=lambda cause: None)
    child = Child("n", 1, process, -1, log, None)  # its exit is not watched here
    child.pipes[STDOUT] = "stdout"
    for at in range(0, len(data), read):
        child.take(STDOUT, data[at : at + read], 2.0)
    child.take(STDOUT, b"", 2.0)  # the pipe's end
    log.close()
    lines = (tmp_path / "n.log").read_text().splitlines()
    return [(r.stream, r.message[:12]) for r in map(parse_line, lines)]


@pytest.mark.parametrize("read", [7, 4096, 65536], ids=["tiny", "page", "pipe"])
@pytest.mark.parametrize("text", [8, 8000], ids=["short", "long"])
def test_a_record_inside_a_half_printed_line_is_taken_out_whole(
    tmp_path: Path, read: int, text: int
) -> None:
    # `print("." * n, end="")`, a record as long as the SDK makes one, then the print's end
    record = LOG_MARKER + logbridge.record_line(1.0, "INFO", "n", "r" * 200_000)
    data = b"." * text + record.encode() + b"\n" + b" done\n" + b"tail without newline"
    assert _records(tmp_path, data, read) == [
        ("log", "r" * 12),
        ("stdout", ("." * text + " done")[:12]),
        ("stdout", "tail without"),
    ]
