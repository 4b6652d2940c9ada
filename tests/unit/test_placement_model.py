"""Placement's pure parts: tcp:// endpoints, receivers' keys, the tcp section, relayed messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.model import cluster_messages as msg
from daemon.model import keeper_messages as km
from daemon.model import routing
from daemon.model.descriptor import Dataflow, parse_dataflow
from daemon.model.errors import RecoverableError
from daemon.model.settings import Settings
from daemon.run.placement import PLACEMENT_FILE, RemoteKeeper, placement_text, read_placement
from node_sdk import config

KEY_A = "A" * 40
KEY_B = "B" * 40

YAML = """
nodes:
  - id: cam
    path: cam.py
    deploy: {machine: b}
    inputs: {tick: dora/timer/millis/10}
    outputs: [image]
  - id: near
    path: near.py
    deploy: {machine: b}
    inputs: {image: cam/image}
  - id: far
    path: far.py
    inputs: {image: cam/image}
  - id: lone
    path: far.py
    deploy: {machine: b}
    inputs: {tick: dora/timer/millis/10}
    outputs: [beat]
"""


def dataflow(tmp_path: Path) -> Dataflow:
    for name in ("cam", "near", "far"):
        (tmp_path / f"{name}.py").write_text("")
    path = tmp_path / "flow.yml"
    path.write_text(YAML)
    return parse_dataflow(path, machines=frozenset({"a", "b"}))


def placement() -> routing.Placement:
    return routing.Placement(
        machine_of={"cam": "b", "near": "b", "far": "a", "lone": "b"},
        machines={"a": routing.MachinePlace("10.0.0.1", KEY_A),
                  "b": routing.MachinePlace("10.0.0.2", KEY_B)},
        ports={("far", "image"): 7001},
        secret_file="/home/flow/cluster/machine.key",
        heartbeat_s=0.5, timeout_s=2.0, grace_s=30.0,
    )  # fmt: skip


def build(df: Dataflow, node: str, place: routing.Placement | None) -> config.NodeConfig:
    endpoints = routing.input_endpoints(df, Path("/run/x"), place)
    return routing.build_node_config(
        df, df.node(node), run_id="r", run_name=None, generation=1, restarts=0,
        daemon_endpoint="ipc:///run/nodes", descriptor_copy=Path("/d.yml"),
        endpoints=endpoints, settings=Settings(), placement=place,
    )  # fmt: skip


def test_only_inputs_fed_from_another_machine_go_over_tcp(tmp_path: Path) -> None:
    df = dataflow(tmp_path)
    place = placement()
    assert place.crossing(df) == [("far", "image")]
    endpoints = routing.input_endpoints(df, Path("/run/x"), place)
    assert endpoints[("far", "image")] == "tcp://10.0.0.1:7001"
    assert endpoints[("near", "image")].startswith("ipc://")


def test_a_sender_names_its_tcp_receivers_machine_key(tmp_path: Path) -> None:
    cam = build(dataflow(tmp_path), "cam", placement())
    edges = {edge.node: edge for edge in cam.outputs["image"]}
    assert edges["far"].server_key == KEY_A
    assert edges["near"].server_key is None  # same machine: ipc://, no CURVE
    assert cam.tcp is not None
    assert cam.tcp.public_key == KEY_B
    assert set(cam.tcp.admitted) == {KEY_A, KEY_B}
    assert (cam.tcp.heartbeat_ivl_s, cam.tcp.heartbeat_timeout_s, cam.tcp.link_grace_s) == (
        0.5, 2.0, 30.0)  # fmt: skip
    # and the node's own decoder takes it
    text = json.dumps(config.to_json(cam))
    assert config.parse(text).outputs["image"][1].server_key == KEY_A


def test_a_node_with_no_tcp_endpoint_nor_output_gets_no_tcp_section(tmp_path: Path) -> None:
    df = dataflow(tmp_path)
    assert build(df, "near", placement()).tcp is None
    assert build(df, "far", placement()).tcp is not None
    # an output with no edge across: its keys all the same, for a recorder wired live
    assert build(df, "lone", placement()).tcp is not None
    assert build(df, "lone", None).tcp is None
    # a run that was not placed is built exactly as before
    assert build(df, "cam", None).tcp is None
    assert all(e.server_key is None for e in build(df, "cam", None).outputs["image"])


def test_a_relayed_message_round_trips_and_is_bounded() -> None:
    carry = msg.Carry("r", "keeper", '{"t":"attach"}' * 100, "")
    assert msg.decode(msg.encode(carry)) == carry
    big = msg.Carry("r", "logs", "x" * msg.MAX_CARRY_BYTES, "n")
    with pytest.raises(msg.LinkMessageError, match="too large"):
        msg.decode(msg.encode(big))


@pytest.mark.parametrize(
    "raw",
    [
        {"t": "carry", "run": "r", "kind": "shell", "body": ""},
        {"t": "carry", "run": "r", "kind": "node", "body": 1},
        {"t": "carry", "run": "r", "kind": "node"},
        {"t": "carry", "run": "r", "kind": "node", "body": "", "extra": ""},
        {"t": "carry", "run": "r" * 2000, "kind": "node", "body": ""},
    ],
)
def test_a_bad_relayed_message_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(msg.LinkMessageError):
        msg.decode(json.dumps(raw).encode())


def test_a_placement_is_read_back_from_its_run_folder_as_written(tmp_path: Path) -> None:
    """A restarted coordinator re-adopts a placed run from this file: same ports, keys."""
    (tmp_path / PLACEMENT_FILE).write_text(placement_text(placement()))
    assert read_placement(tmp_path) == placement()


@pytest.mark.parametrize("text", [None, "", "{}", '{"machine_of": []}', "[1, 2]"])
def test_a_missing_or_damaged_placement_is_one_error_naming_its_file(
    tmp_path: Path, text: str | None
) -> None:
    if text is not None:
        (tmp_path / PLACEMENT_FILE).write_text(text)
    with pytest.raises(RecoverableError, match=f"its placement {tmp_path / PLACEMENT_FILE}"):
        read_placement(tmp_path)


class _Unreachable:
    """A relay to machines that are never connected (nothing is sent in these tests)."""

    def send_carry(self, machine: str, carry: msg.Carry) -> bool:
        return False


def test_a_members_later_report_applies_the_exits_it_saw() -> None:
    """The keeper state a member reports on its welcome: what ended meanwhile is applied."""
    events: list[km.FromKeeper] = []
    remote = RemoteKeeper("b", "r", _Unreachable(), on_event=events.append)
    attach = km.State({"cam": km.NodeState(1, 10, None, True, ())})
    remote.deliver(km.encode(attach).decode())
    assert events == [attach], "the attach answer is no report: nothing ended"
    report = km.State({"cam": km.NodeState(1, 10, -9, False, ("killed",)),
                       "near": km.NodeState(2, 11, None, True, ())})  # fmt: skip
    remote.deliver(km.encode(report).decode())
    assert events[1:] == [km.Exited("cam", 1, -9, ("killed",)), report]
    assert remote.state == report
