"""`flow check` and `flow graph` driven as a user would: one process per command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
FIXTURES = sorted(p for p in BAD.glob("*.yml") if p.name != "ok.yml")


def flow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def expectation(path: Path) -> tuple[int, str, str]:
    """The fixture's first line: `# expect: LINE | FIELD PATH | CAUSE`."""
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: "), f"{path.name} lacks its expect line"
    line, where, cause = (part.strip() for part in header[len("# expect: ") :].split("|"))
    return int(line), where, cause


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_each_bad_file_names_line_field_and_cause(path: Path) -> None:
    line, where, cause = expectation(path)
    done = flow("check", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    prefix = f"{path}:{line}: " + (f"{where}: " if where else "")
    problems = done.stderr.splitlines()
    assert any(p.startswith(prefix) and cause in p for p in problems), (prefix, cause, problems)


def test_good_file_is_ok() -> None:
    done = flow("check", str(BAD / "ok.yml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: 2 nodes, 1 connection"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.yml"
    path.write_text(
        "nodes:\n"
        "  - id: a\n"
        "    path: ./missing\n"  # 3
        "    inputs:\n"
        "      tick: dora/timer/hours/1\n"  # 5
        "      x: ghost/out\n"  # 6
        "  - id: a\n"  # 7
        "    path: dynamic\n"
        "    git: https://example.org/repo.git\n"  # 9
        "    restart_policy: maybe\n"  # 10
    )
    done = flow("check", str(path))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert [int(line.split(":")[1]) for line in lines] == [3, 5, 6, 7, 9, 10]
    assert all(line.startswith(f"{path}:") for line in lines)


def test_missing_file_is_one_error_line(tmp_path: Path) -> None:
    done = flow("check", str(tmp_path / "nope.yml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: no such file: {tmp_path / 'nope.yml'}"


def test_relative_file_name_is_kept_in_problems(tmp_path: Path) -> None:
    (tmp_path / "df.yml").write_text("nodes:\n  - id: a\n    path: dynamic\n    outputs: x\n")
    done = flow("check", "df.yml", cwd=tmp_path)
    assert done.stderr.startswith("df.yml:4: nodes[0].outputs: expected a list of output ids")


def test_graph_prints_mermaid_by_default() -> None:
    done = flow("graph", str(BAD / "ok.yml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart LR\n")
    assert '-->|"value"|' in done.stdout
    assert flow("graph", "--mermaid", str(BAD / "ok.yml")).stdout == done.stdout


def test_graph_html_writes_a_page_and_prints_its_path(tmp_path: Path) -> None:
    out = tmp_path / "graph.html"
    done = flow("graph", str(BAD / "ok.yml"), "--html", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page


def test_graph_of_a_bad_file_prints_problems(tmp_path: Path) -> None:
    done = flow("graph", str(BAD / "timer_unit.yml"))
    assert done.returncode == 2
    assert "unknown timer unit 'hours'" in done.stderr
