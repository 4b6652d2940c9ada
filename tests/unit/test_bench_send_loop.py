"""`python -m bench.send_loop` times flow's and raw pyzmq's sends of one small message, and
every message reaches the reader process (its socket is read, not left to fill)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

from bench import send_loop


def test_both_sides_are_timed_in_every_round() -> None:
    figures = send_loop.measure(count=2000, size=8)
    assert set(figures) == {"flow send_output", "raw send_multipart"}
    assert all(len(v) == send_loop.ROUNDS and min(v) > 0 for v in figures.values())


def test_arrow_and_struct_with_metadata_are_timed_on_both_sides() -> None:
    for kind in ("arrow", "struct"):
        figures = send_loop.measure(count=500, size=64, kind=kind, meta=True)
        assert all(len(v) == send_loop.ROUNDS and min(v) > 0 for v in figures.values())


def test_the_table_is_printed() -> None:
    argv = [sys.executable, "-m", "bench.send_loop", "--count", "1000", "--size", "16"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "16 B, 1000 messages a round, 5 rounds alternated"
    assert [row.split(" | ")[0] for row in lines[3:]] == ["| flow send_output",
                                                         "| raw send_multipart"]  # fmt: skip
