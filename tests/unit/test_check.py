"""`flow check` and `flow graph` in process: one bad file per validation rule, each giving
`FILE:LINE: field path: cause` and exit 2 (SPEC 2). The CLI smoke test is in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
FIXTURES = sorted(p for p in BAD.glob("*.yml") if p.name != "ok.yml")

Output = tuple[int, str, str]


def check(*args: str, capsys: pytest.CaptureFixture[str]) -> Output:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def expectation(path: Path) -> tuple[int, str, str]:
    """The fixture's first line: `# expect: LINE | FIELD PATH | CAUSE`."""
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: "), f"{path.name} lacks its expect line"
    line, where, cause = (part.strip() for part in header[len("# expect: ") :].split("|"))
    return int(line), where, cause


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_each_bad_file_names_line_field_and_cause(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, where, cause = expectation(path)
    status, out, err = check("check", str(path), capsys=capsys)
    assert status == 2, out + err
    assert out == ""
    assert "Traceback" not in err
    prefix = f"{path}:{line}: " + (f"{where}: " if where else "")
    problems = err.splitlines()
    assert any(p.startswith(prefix) and cause in p for p in problems), (prefix, cause, problems)


def test_good_file_is_ok(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = check("check", str(BAD / "ok.yml"), capsys=capsys)
    assert status == 0, err
    assert out.strip() == "ok: 2 nodes, 1 connection"


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    status, _, err = check("check", str(path), capsys=capsys)
    assert status == 2
    header, *lines = err.splitlines()
    assert header == "error: the dataflow is invalid (6 problems)"  # as flow start says it
    assert [int(line.split(":")[1]) for line in lines] == [3, 5, 6, 7, 9, 10]
    assert all(line.startswith(f"{path}:") for line in lines)


def test_missing_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = check("check", str(tmp_path / "nope.yml"), capsys=capsys)
    assert status == 2
    # the words of flow start, run, graph and build (tests/e2e/test_check_cli.py)
    assert err.strip() == f"error: no such dataflow file: {tmp_path / 'nope.yml'}"


def test_relative_file_name_is_kept_in_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "df.yml").write_text("nodes:\n  - id: a\n    path: dynamic\n    outputs: x\n")
    monkeypatch.chdir(tmp_path)
    _, _, err = check("check", "df.yml", capsys=capsys)
    assert err.splitlines()[1].startswith("df.yml:4: nodes[0].outputs: expected a list of output")


def test_graph_prints_mermaid_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = check("graph", str(BAD / "ok.yml"), capsys=capsys)
    assert status == 0, err
    assert out.startswith("flowchart LR\n")
    assert '-->|"value"|' in out
    assert check("graph", "--mermaid", str(BAD / "ok.yml"), capsys=capsys)[1] == out


def test_graph_html_writes_a_page_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page_path = tmp_path / "graph.html"
    status, out, err = check("graph", str(BAD / "ok.yml"), "--html", str(page_path), capsys=capsys)
    assert status == 0, err
    assert out.strip() == str(page_path)
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page


def test_graph_of_a_bad_file_prints_problems(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = check("graph", str(BAD / "timer_unit.yml"), capsys=capsys)
    assert status == 2
    assert "unknown timer unit 'hours'" in err


def test_a_node_refused_as_a_whole_is_not_also_reported_for_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dora.yml"
    path.write_text(
        "nodes:\n"
        "  - id: rust-node\n"
        "    git: https://github.com/dora-rs/dora.git\n"  # 3
        "    path: target/debug/rust-dataflow-example-node\n"
        "  - id: cam\n"
        "    hub: opencv-video-capture\n"  # 6
        "    path: opencv-video-capture\n"
    )
    status, _, err = check("check", str(path), capsys=capsys)
    assert status == 2
    _, *lines = err.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["nodes[0].git", "nodes[1].hub"], lines
