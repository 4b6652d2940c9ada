"""`flow graph`: Mermaid text, or a self-contained HTML page; bad files exit 2."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO, flow, write_dataflow

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


PARALLEL = """\
nodes:
  - id: cam
    path: node.py
    inputs:
      tick: dora/timer/millis/33
    outputs: [image, depth, info]
  - id: detector
    path: node.py
    inputs:
      image: cam/image
      depth: cam/depth
      meta: cam/info
"""


def _label_boxes(html: str) -> list[tuple[float, float, float, float]]:
    found = re.findall(
        r'<g class="label"><rect x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="(\d+)"',
        html,
    )
    return [(float(x), float(y), float(w), float(h)) for x, y, w, h in found]


def test_parallel_edges_are_spread_and_their_labels_all_seen(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, PARALLEL, {"node.py": "print('x')\n"})
    page = tmp_path / "graph.html"
    done = flow("graph", str(yml), "--html", str(page), home=flow_home)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    paths = re.findall(r'class="edge" marker-end="url\(#arrow\)" d="([^"]+)"', html)
    assert len(paths) == 3
    assert len(set(paths)) == 3, paths  # three edges cam -> detector, none on another
    boxes = _label_boxes(html)
    assert len(boxes) == 4  # three connections and the timer's
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
            apart = apart or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
            assert apart, f"labels overlap: {a} {b}"
    assert "2 nodes, 3 connections, 1 timer<" in html


def test_open_shows_the_page_in_the_browser(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, PARALLEL, {"node.py": "print('x')\n"})
    seen = tmp_path / "browser.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    done = flow("graph", str(yml), "--open", home=flow_home, env_extra={"BROWSER": str(browser)})
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    try:
        assert seen.read_text().strip() == page.as_uri()
        assert page.stat().st_mode & 0o077 == 0  # a temporary page only this user reads
        assert "<svg" in page.read_text()
    finally:
        page.unlink()
