"""`flow doctor --cluster`'s plan (daemon/model/cluster_probe.py): which links, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.model.cluster_probe import (
    PlannedLink,
    acknowledgement,
    dataflow_links,
    every_pair,
    payload,
)
from daemon.model.descriptor import parse_dataflow
from daemon.model.routing import place_nodes

YAML = """
nodes:
  - id: cam
    path: n.py
    deploy: {machine: b}
    inputs: {tick: dora/timer/millis/10}
    outputs: [image]
  - id: near
    path: n.py
    deploy: {machine: b}
    inputs: {image: cam/image}
    outputs: [seen]
  - id: far
    path: n.py
    inputs: {image: cam/image, seen: near/seen}
  - id: lidar
    path: n.py
    deploy: {machine: c}
    inputs: {tick: dora/timer/millis/10}
    outputs: [points]
  - id: fuse
    path: n.py
    deploy: {machine: b}
    inputs: {points: lidar/points}
"""


def links(tmp_path: Path, members: set[str]) -> list[PlannedLink]:
    (tmp_path / "n.py").write_text("")
    path = tmp_path / "flow.yml"
    path.write_text(YAML)
    dataflow = parse_dataflow(path, machines=frozenset({"a", "b", "c"}))
    return dataflow_links(dataflow, place_nodes(dataflow, "a", members))


def test_each_crossing_pair_is_probed_both_ways_and_local_edges_are_listed(
    tmp_path: Path,
) -> None:
    planned = links(tmp_path, {"b", "c"})
    assert [(link.source, link.target, link.edges) for link in planned] == [
        ("a", "b", ()),  # the way back of b -> a
        ("b", "a", ("cam/image -> far/image", "near/seen -> far/seen")),
        ("b", "b", ("cam/image -> near/image",)),
        ("b", "c", ()),
        ("c", "b", ("lidar/points -> fuse/points",)),
    ]
    assert [link.local for link in planned] == [False, False, True, False, False]


def test_a_machine_not_admitted_runs_its_nodes_on_the_coordinator(tmp_path: Path) -> None:
    planned = links(tmp_path, {"b"})  # c is named but not a member: its node runs on a
    assert {(link.source, link.target) for link in planned} == {
        ("a", "b"), ("b", "a"), ("b", "b")}  # fmt: skip
    assert all(link.local for link in links(tmp_path, set()))  # no member: all on a


def test_every_pair_of_machines_both_ways() -> None:
    assert [(link.source, link.target) for link in every_pair(["b", "a", "c", "a"])] == [
        ("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]  # fmt: skip
    assert every_pair(["a"]) == []


@pytest.mark.parametrize("size", [0, 8, 251, 252, 8 << 20])
def test_a_payload_has_its_size_and_its_acknowledgement_tells_a_change(size: int) -> None:
    data = payload(size)
    assert len(data) == size
    assert acknowledgement(data).startswith(f"{size} ".encode())
    if size:
        changed = bytes([data[0] ^ 1]) + data[1:]
        assert acknowledgement(changed) != acknowledgement(data)
