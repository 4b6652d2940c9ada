"""Edges, neighbours, and the Mermaid and HTML drawings of a dataflow."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cli.graph_html import render as to_html
from cli.graph_mermaid import to_mermaid
from daemon.model.descriptor import Dataflow, OutputRef, parse_dataflow
from daemon.model.graph import Edge, downstream, edges, upstream

ROBOT = """\
name: robot <demo>
nodes:
  - id: camera
    path: dynamic
    inputs: {tick: dora/timer/millis/50}
    outputs: [image]
  - id: lidar
    path: dynamic
    inputs: {tick: dora/timer/millis/100}
    outputs: [points]
  - id: object.detection
    path: dynamic
    inputs: {image: camera/image}
    outputs: [bbox]
  - id: planner
    path: dynamic
    inputs: {bbox: object.detection/bbox, points: lidar/points, state: controller/state}
    outputs: [cmd]
  - id: controller
    path: dynamic
    inputs: {cmd: planner/cmd, tick: dora/timer/millis/50}
    outputs: [state]
  - id: plot
    path: dynamic
    inputs: {image: camera/image, boxes: object.detection/bbox}
"""


@pytest.fixture
def robot(tmp_path: Path) -> Dataflow:
    path = tmp_path / "robot.yml"
    path.write_text(ROBOT)
    return parse_dataflow(path)


def test_edges_exclude_timers_and_keep_file_order(robot: Dataflow) -> None:
    assert edges(robot) == [
        Edge("camera", "image", "object.detection", "image"),
        Edge("object.detection", "bbox", "planner", "bbox"),
        Edge("lidar", "points", "planner", "points"),
        Edge("controller", "state", "planner", "state"),
        Edge("planner", "cmd", "controller", "cmd"),
        Edge("camera", "image", "plot", "image"),
        Edge("object.detection", "bbox", "plot", "boxes"),
    ]
    assert len(edges(robot)) == robot.connections


def test_upstream_and_downstream(robot: Dataflow) -> None:
    assert upstream(robot, "plot") == {
        "image": [OutputRef("camera", "image")],
        "boxes": [OutputRef("object.detection", "bbox")],
    }
    assert upstream(robot, "camera") == {"tick": []}
    assert [e.target for e in downstream(robot, "camera")] == ["object.detection", "plot"]
    assert downstream(robot, "plot") == []
    with pytest.raises(KeyError):
        upstream(robot, "ghost")
    with pytest.raises(KeyError):
        downstream(robot, "ghost")


def test_mermaid(robot: Dataflow) -> None:
    text = to_mermaid(robot)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  n0[/"camera"/]' in lines  # dynamic nodes get their own shape
    assert '  t0(["dora/timer/millis/50"]):::timer' in lines
    assert '  t1(["dora/timer/millis/100"]):::timer' in lines
    assert '  t0 -.->|"tick"| n0' in lines
    assert '  t0 -.->|"tick"| n4' in lines  # one node per distinct timer
    assert '  n0 -->|"image"| n2' in lines
    assert '  n2 -->|"bbox → boxes"| n5' in lines
    assert "  class n0,n1,n2,n3,n4,n5 dynamic" in lines
    assert text.endswith("\n")
    assert sum("-->" in line for line in lines) == robot.connections


def test_mermaid_escapes_quotes(tmp_path: Path) -> None:
    path = tmp_path / "q.yml"
    path.write_text('nodes:\n  - {id: a, path: dynamic, inputs: {t: "flow/timer/hz/5"}}\n')
    assert '(["flow/timer/hz/5"])' in to_mermaid(parse_dataflow(path))


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_and_well_formed(robot: Dataflow) -> None:
    page = to_html(robot)
    assert page.startswith("<!DOCTYPE html>")
    # well-formed XML once the doctype is dropped: every tag closed, every text escaped
    root = ET.fromstring(page.split("\n", 1)[1])
    assert root.tag == "html"
    collect = _Collect()
    collect.feed(page)
    assert not [a for tag, a in collect.tags if tag == "script" and a.get("src")]
    assert not [a for tag, a in collect.tags if tag == "link"]
    assert "http" not in page  # nothing fetched from the network
    assert "robot &lt;demo&gt;" in page
    texts = [el.text for el in root.iter("text")]
    for node in robot.nodes:
        assert node.id in texts
    assert texts.count("dora/timer/millis/50") == 2  # one small timer per receiver
    assert "bbox → boxes" in texts
    assert len(list(root.iter("path"))) == robot.connections + 3 + 1  # + timers + marker


def test_html_layout_goes_left_to_right(robot: Dataflow) -> None:
    root = ET.fromstring(to_html(robot).split("\n", 1)[1])
    x: dict[str, float] = {}
    for group in root.iter("g"):
        rect, text = group.find("rect"), group.find("text")
        if group.get("class") in ("node", "dynamic") and rect is not None and text is not None:
            x[str(text.text)] = float(rect.get("x", "0"))
    assert x["camera"] < x["object.detection"] < x["planner"] < x["controller"]
    assert x["lidar"] < x["planner"]
    # no two boxes overlap
    boxes = []
    for rect in root.iter("rect"):
        if rect.get("rx") in ("6", "14"):
            boxes.append(tuple(float(rect.get(k, "0")) for k in ("x", "y", "width", "height")))
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1 :]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay


def test_html_of_a_single_node(tmp_path: Path) -> None:
    path = tmp_path / "one.yml"
    path.write_text("nodes:\n  - id: only\n    path: dynamic\n")
    page = to_html(parse_dataflow(path))
    assert re.search(r'<svg width="\d+" height="\d+"', page)
    ET.fromstring(page.split("\n", 1)[1])
