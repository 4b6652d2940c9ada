"""`flow graph`: Mermaid text, or a self-contained HTML page; bad files exit 2."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO, flow

QUICKSTART = REPO / "dataflows" / "quickstart" / "dataflow.yml"


def test_mermaid_shows_nodes_edges_and_timers(flow_home: Path) -> None:
    done = flow("graph", str(QUICKSTART), "--mermaid", home=flow_home)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("flowchart LR")
    for node in ("source", "transform", "sink"):
        assert f'"{node}"' in text
    assert '|"counter"|' in text
    assert '|"doubled"|' in text
    assert "dora/timer/millis/100" in text


def test_html_page_is_self_contained(flow_home: Path, tmp_path: Path) -> None:
    page = tmp_path / "graph.html"
    done = flow("graph", str(QUICKSTART), "--html", str(page), home=flow_home)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<svg" in html
    for node in ("source", "transform", "sink"):
        assert node in html
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?https?:""", html)


def test_bad_file_gives_problem_lines(flow_home: Path) -> None:
    bad = REPO / "tests" / "data" / "bad" / "timer_unit.yml"
    done = flow("graph", str(bad), home=flow_home)
    assert done.returncode == 2
    assert "unknown timer unit 'hours'" in done.stderr
