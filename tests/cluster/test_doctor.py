"""`flow doctor --cluster` (docs/cluster.md, "Probing the links"): the link matrix between
real machines (network namespaces), real daemons and the real CLI on the coordinator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import BOUND_S, wait_for
from netns import PORT, Machine

NODE = "from node_sdk import Node\nfor event in Node():\n    pass\n"


def write_dataflow(folder: Path) -> Path:
    """A camera on machine b feeding a planner on the coordinator a, and a local edge on a."""
    folder.chmod(0o755)
    (folder / "node.py").write_text(NODE)
    path = folder / "robot.yml"
    path.write_text("""
nodes:
  - id: camera
    path: node.py
    deploy: {machine: b}
    inputs: {tick: dora/timer/millis/100}
    outputs: [image]
  - id: planner
    path: node.py
    inputs: {image: camera/image}
    outputs: [plan]
  - id: logger
    path: node.py
    inputs: {plan: planner/plan}
""")
    return path


def connected(a: Machine, name: str) -> bool:
    rows = json.loads(a.flow("cluster", "status", "--json").stdout)["machines"]
    return any(row["name"] == name and row["state"] == "connected" for row in rows)


def links(done: str) -> dict[tuple[str, str], dict[str, object]]:
    rows = [json.loads(line) for line in done.splitlines() if line.strip()]
    return {(row["source"], row["target"]): row for row in rows}


def test_the_link_matrix_of_a_dataflow_across_two_machines(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a = cluster["a"]
    wait_for(lambda: connected(a, "b"), "b connected")
    dataflow = write_dataflow(tmp_path)
    done = a.flow("doctor", "--cluster", str(dataflow))
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["FROM", "TO", "LINK", "8B", "8MiB", "MIB/S", "EDGES"]
    words = {tuple(row.split()[:3]) for row in rows}
    # the planned edge b -> a, its way back, and a's own edge (local, not probed)
    assert words == {("a", "a", "local"), ("a", "b", "ok"), ("b", "a", "ok")}
    as_json = links(a.flow("doctor", "--cluster", str(dataflow), "--json").stdout)
    assert set(as_json) == {("a", "a"), ("a", "b"), ("b", "a")}
    assert as_json[("b", "a")]["edges"] == ["camera/image -> planner/image"]
    assert as_json[("a", "b")]["edges"] == []
    for pair in (("a", "b"), ("b", "a")):
        row = as_json[pair]
        assert row["status"] == "ok", row
        assert row["error"] is None, row
        assert isinstance(row["large_s"], float), row
        assert row["large_s"] > 0, row
        assert row["large_bytes"] == 8 << 20
    assert as_json[("a", "a")]["status"] == "local"
    # without a dataflow: every pair of connected machines
    every = links(a.flow("doctor", "--cluster", "--json", "--large", "1MiB").stdout)
    assert set(every) == {("a", "b"), ("b", "a")}
    assert all(row["status"] == "ok" for row in every.values()), every
    # no probe receiver is left bound on either machine once it is done
    for machine in (a, cluster["b"]):
        listening = machine.run("ss", "-Htln").stdout
        assert listening.count("LISTEN") == (1 if machine is a else 0), listening
    # `flow start --probe`: the same probe first, then the start
    started = a.flow("start", "--detach", "--probe", str(dataflow))
    assert started.returncode == 0, started.stdout + started.stderr
    assert "2 links between machines probed: ok" in started.stderr
    stopped = a.flow("stop", started.stdout.split()[0])
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def test_large_messages_lost_one_way_fail_the_link_by_name(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: connected(a, "b"), "b connected")
    dataflow = write_dataflow(tmp_path)
    try:
        b.drop_large()  # b's large packets vanish; everything else passes
    except RuntimeError as exc:
        pytest.skip(f"cannot make a path that loses large packets here: {exc}")
    done = a.flow("doctor", "--cluster", str(dataflow), "--timeout", "1s")
    print(done.stdout, done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    failing = [line for line in done.stderr.splitlines() if line.startswith("error: link ")]
    assert len(failing) == 1, done.stderr
    assert failing[0].startswith("error: link b -> a: 8MiB message not acknowledged within 1 s")
    assert "8 B messages pass" in failing[0]
    rows = {tuple(row.split()[:2]): row.split() for row in done.stdout.splitlines()[1:]
            if not row.startswith(" ")}  # fmt: skip
    assert rows[("a", "b")][2] == "ok", rows  # the other way is whole
    assert rows[("b", "a")][2] == "FAIL", rows
    assert rows[("b", "a")][3] != "-", rows  # the small ones got through: their round trip
    # the cluster link itself (small messages) lives on
    assert connected(a, "b")
    # `flow start --probe` starts nothing on such a network
    refused = a.flow("start", "--detach", "--probe", str(dataflow))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "error: link b -> a: 8MiB message not acknowledged" in refused.stderr
    assert "not started: 1 of 2 links between machines failed" in refused.stderr
    assert refused.stdout == ""
    assert a.flow("list", "--all", "--json").stdout.strip() == ""


def test_a_machine_cut_off_is_reported_within_the_bound(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: connected(a, "b"), "b connected")
    dataflow = write_dataflow(tmp_path)
    b.link(False)  # the coordinator may not have noticed yet: the probe must not hang
    started = time.monotonic()
    done = a.flow("doctor", "--cluster", str(dataflow), "--timeout", "1s")
    took = time.monotonic() - started
    print(done.stdout, done.stderr, f"took {took:.2f} s")
    assert done.returncode == 1, done.stdout + done.stderr
    failing = [line for line in done.stderr.splitlines() if line.startswith("error: link ")]
    assert [line.split(":")[1] for line in failing] == [" link a -> b", " link b -> a"]
    assert all("machine b" in line for line in failing), failing
    assert took < BOUND_S, took


def test_every_pair_of_three_machines_both_ways(hosts: dict[str, Machine]) -> None:
    """Members probe each other too: b and c each bind for the other and send to it."""
    a = hosts["a"]
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stdout + up.stderr
    for name in ("b", "c"):
        token = a.flow("cluster", "token").stdout.strip()
        joined = hosts[name].flow("up", "--machine", name, "--join", token)
        assert joined.returncode == 0, joined.stdout + joined.stderr
    wait_for(lambda: connected(a, "b") and connected(a, "c"), "b and c connected")
    done = a.flow("doctor", "--cluster", "--large", "2MiB")
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["FROM", "TO", "LINK", "8B", "2MiB", "MIB/S"]
    assert {tuple(row.split()[:3]) for row in rows} == {
        (s, t, "ok") for s in "abc" for t in "abc" if s != t}  # fmt: skip
