"""Placement's pure parts for dynamic nodes and `send_stdout_as` across machines: the keys a
sender of a dynamic node elsewhere carries, the keys of a keeper's stdout edges."""

from __future__ import annotations

from pathlib import Path

from daemon.model import keeper_messages as km
from daemon.model import routing
from daemon.model.descriptor import Dataflow, Input, OutputRef, parse_dataflow
from daemon.model.settings import Settings
from node_sdk import config

KEY_A = "A" * 40
KEY_B = "B" * 40

YAML = """
nodes:
  - id: cam
    path: cam.py
    inputs: {tick: dora/timer/millis/10}
    outputs: [image]
  - id: viewer
    path: dynamic
    deploy: {machine: b}
    inputs: {image: cam/image}
  - id: talker
    path: talker.py
    deploy: {machine: b}
    outputs: [lines]
    send_stdout_as: lines
  - id: near
    path: near.py
    deploy: {machine: b}
    inputs: {said: talker/lines}
  - id: far
    path: far.py
    inputs: {said: talker/lines}
"""


def _dataflow(tmp_path: Path) -> Dataflow:
    for name in ("cam", "talker", "near", "far"):
        (tmp_path / f"{name}.py").write_text("")
    path = tmp_path / "flow.yml"
    path.write_text(YAML)
    return parse_dataflow(path, machines=frozenset({"a", "b"}))


def _placement(df: Dataflow) -> routing.Placement:
    machine_of = routing.place_nodes(df, "a", {"b"})
    crossing = routing.Placement(machine_of, {}, {}, "", 1, 3, 0).crossing(df)
    return routing.Placement(
        machine_of=machine_of,
        machines={"a": routing.MachinePlace("10.0.0.1", KEY_A),
                  "b": routing.MachinePlace("10.0.0.2", KEY_B)},
        ports={pair: 7001 + i for i, pair in enumerate(crossing)},
        secret_file="/home/flow/cluster/machine.key",
        heartbeat_s=0.5, timeout_s=2.0, grace_s=30.0,
    )  # fmt: skip


def _config(df: Dataflow, node: str, place: routing.Placement) -> config.NodeConfig:
    endpoints = routing.input_endpoints(df, Path("/run/x"), place)
    return routing.build_node_config(
        df, df.node(node), run_id="r", run_name=None, generation=1, restarts=0,
        daemon_endpoint="ipc:///run/nodes", descriptor_copy=Path("/d.yml"),
        endpoints=endpoints, settings=Settings(), placement=place,
    )  # fmt: skip


def test_a_sender_of_a_dynamic_node_elsewhere_has_keys_and_its_wire_names_the_key(
    tmp_path: Path,
) -> None:
    df = _dataflow(tmp_path)
    place = _placement(df)
    cam = _config(df, "cam", place)
    assert cam.outputs["image"] == ()  # the dynamic receiver is wired live, when attached
    assert cam.tcp is not None
    assert cam.tcp.public_key == KEY_A
    viewer = _config(df, "viewer", place)
    endpoint = viewer.inputs["image"].endpoint  # type: ignore[union-attr]
    assert endpoint == f"tcp://10.0.0.2:{place.ports[('viewer', 'image')]}"
    assert viewer.tcp is not None
    assert viewer.tcp.public_key == KEY_B
    spec = Input("image", OutputRef("cam", "image"))
    wire = routing.keyed_edge(routing.edge_to("viewer", spec, endpoint), place)
    assert wire.server_key == KEY_B
    local = routing.edge_to("viewer", spec, "ipc:///run/x/n1i0")
    assert routing.keyed_edge(local, place).server_key is None
    assert routing.keyed_edge(routing.edge_to("viewer", spec, endpoint), None).server_key is None


def test_a_keepers_stdout_edges_across_carry_keys_and_round_trip(tmp_path: Path) -> None:
    df = _dataflow(tmp_path)
    place = _placement(df)
    endpoints = routing.input_endpoints(df, Path("/run/x"), place)
    edges = routing.output_edges(df, df.node("talker"), endpoints, place)["lines"]
    by_node = {edge["node"]: edge for edge in edges}
    assert by_node["far"]["server_key"] == KEY_A
    assert by_node["far"]["endpoint"].startswith("tcp://10.0.0.1:")
    assert "server_key" not in by_node["near"]  # same machine: ipc://
    keys = routing.stdout_keys(df.node("talker"), edges, place)
    assert keys == km.StdoutKeys(KEY_B, "/home/flow/cluster/machine.key", 500, 2000)
    assert routing.stdout_keys(df.node("talker"), [by_node["near"]], place) is None
    assert routing.stdout_keys(df.node("talker"), edges, None) is None
    spawn = km.Spawn("talker", 1, ("x",), {}, "/", "/l", km.StdoutAs(
        "talker/lines", tuple(km.Edge(**edge) for edge in edges), tcp=keys))  # fmt: skip
    assert km.decode(km.encode(spawn)) == spawn
