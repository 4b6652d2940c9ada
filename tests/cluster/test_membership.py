"""Joining, links and membership states across real network namespaces (docs/cluster.md)."""

from __future__ import annotations

import json
import time
from typing import Any

from helpers import wait_for
from netns import HEARTBEAT_S, LOST_AFTER_S, PORT, Machine

# the documented bound on noticing a silent machine: lost_after, plus one watch tick
LOSS_BOUND_S = LOST_AFTER_S + HEARTBEAT_S


def status(machine: Machine) -> dict[str, Any]:
    done = machine.flow("cluster", "status", "--json")
    assert done.returncode == 0, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def state_of(coordinator: Machine, name: str) -> str | None:
    rows = {row["name"]: row for row in status(coordinator)["machines"]}
    return rows[name]["state"] if name in rows else None


def test_join_shows_connected_on_both_sides(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: state_of(a, "b") == "connected", "b connected on a")
    rows = {row["name"]: row for row in status(a)["machines"]}
    assert rows["a"]["role"] == "coordinator"
    assert rows["b"]["address"] == b.address  # the address the coordinator saw
    assert rows["b"]["fingerprint"].startswith("sha256:")
    member = status(b)
    assert member["role"] == "member"
    assert member["coordinator_address"] == f"tcp://{a.address}:{PORT}"
    assert member["link"] == "connected"
    table = a.flow("cluster", "status")
    assert "MACHINE" in table.stdout
    assert "connected" in table.stdout
    # the member's secret key never leaves its home, and only its user can read it
    keys = b.home / "cluster" / "keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert (b.home / "cluster").stat().st_mode & 0o777 == 0o700


PROBE = """
import sys, zmq
address, server_key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.linger = 0
if mode == "curve":  # a key pair of its own, which no token admitted
    public, secret = zmq.curve_keypair()
    s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_key.encode(), public, secret
elif mode == "member":  # the key of a machine that was removed
    import json
    keys = json.load(open(sys.argv[4]))
    s.curve_serverkey = server_key.encode()
    s.curve_publickey, s.curve_secretkey = keys["public"].encode(), keys["secret"].encode()
events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
monitor = s.get_monitor_socket(events | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
s.connect(address)
s.send(b'{"t":"hello","name":"b"}')
s.send(b'{"t":"join","name":"x","public_key":"' + b"0" * 40 + b'"}')
answered = s.poll(int(float(sys.argv[-1]) * 1000))
from zmq.utils.monitor import recv_monitor_message
handshake = "none"
while monitor.poll(0):
    event = recv_monitor_message(monitor)["event"]
    handshake = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "accepted"}.get(event, "refused")
print("answered" if answered else "silent", handshake)
ctx.destroy(linger=0)
"""


def _server_key(coordinator: Machine) -> str:
    return str(json.loads((coordinator.home / "cluster" / "keys.json").read_text())["public"])


def test_a_client_without_admitted_keys_gets_no_answer(cluster: dict[str, Machine]) -> None:
    a, c = cluster["a"], cluster["c"]
    address = f"tcp://{a.address}:{PORT}"
    for mode in ("plain", "curve"):
        # the wait for an answer is also the handshake's to fail in, on a loaded machine
        probe = c.python(PROBE, address, _server_key(a), mode, "4")
        assert probe.returncode == 0, probe.stderr
        # nothing answered, and the handshake itself failed: no byte reached the daemon
        assert probe.stdout.split() == ["silent", "refused"], f"{mode}: {probe.stdout}"
    assert {row["name"] for row in status(a)["machines"]} == {"a", "b"}


def test_bad_and_revoked_tokens_are_refused_in_one_line(cluster: dict[str, Machine]) -> None:
    a, c = cluster["a"], cluster["c"]
    short_lived = a.flow("cluster", "token", "--ttl", "1s").stdout.strip()
    issued = time.monotonic()
    token = a.flow("cluster", "token").stdout.strip()
    token_id = a.flow("cluster", "token").stderr.split()[1].rstrip(":")  # another, kept live
    revoke = a.flow("cluster", "token", "--revoke", token)
    assert revoke.returncode == 0, revoke.stderr
    refused = c.flow("up", "--machine", "c", "--join", token)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "refused the token" in refused.stderr
    damaged = c.flow("up", "--machine", "c", "--join", token[:-6] + "AAAAAA")
    assert damaged.returncode != 0
    assert len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    garbage = c.flow("up", "--machine", "c", "--join", "hello")
    assert garbage.returncode == 2
    assert "not a flow join token" in garbage.stderr
    assert c.flow("status").returncode == 3  # no daemon started on c
    unknown = a.flow("cluster", "token", "--revoke", "nosuchid")
    assert unknown.returncode == 2
    assert "no live join token" in unknown.stderr
    # a name the coordinator knows with another key, through a live token
    live = a.flow("cluster", "token").stdout.strip()
    taken = c.flow("up", "--machine", "b", "--join", live)
    assert taken.returncode == 1
    assert "already admitted with another key" in taken.stderr
    assert len(taken.stderr.strip().splitlines()) == 1, taken.stderr
    # a name a dataflow's deploy gives the coordinator: a member must not take its nodes
    local = c.flow("up", "--machine", "local", "--join", live)
    assert local.returncode == 1
    assert "machine name local names the coordinator in a dataflow's deploy" in local.stderr
    assert a.flow("cluster", "token", "--revoke", token_id).returncode == 0
    # an expired token: refused like a revoked one (within a heartbeat of its expiry)
    time.sleep(max(0.0, issued + 1.0 + 2 * HEARTBEAT_S - time.monotonic()))
    expired = c.flow("up", "--machine", "c", "--join", short_lived)
    assert expired.returncode == 1
    assert "refused the token" in expired.stderr
    assert c.flow("status").returncode == 3


def test_partition_is_lost_within_the_bound_and_mends(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: state_of(a, "b") == "connected", "b connected")
    b.link(False)
    took = wait_for(lambda: state_of(a, "b") == "lost", "b lost after the partition")
    print(f"partition noticed in {took:.2f} s (bound {LOSS_BOUND_S:g} s + a status call)")
    wait_for(lambda: status(b)["link"] == "lost", "b sees its coordinator lost")
    b.link(True)
    wait_for(lambda: state_of(a, "b") == "connected", "b connected again")
    wait_for(lambda: status(b)["link"] == "connected", "b sees its coordinator again")


def test_a_killed_machine_is_lost(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: state_of(a, "b") == "connected", "b connected")
    b.kill()
    took = wait_for(lambda: state_of(a, "b") == "lost", "b lost after its processes died")
    print(f"machine loss noticed in {took:.2f} s (bound {LOSS_BOUND_S:g} s + a status call)")
    # a restarted member rejoins by itself, without the token
    back = b.flow("up", "--machine", "b")
    assert back.returncode == 0, back.stderr
    wait_for(lambda: state_of(a, "b") == "connected", "b back")


def test_a_lost_coordinator_is_noticed_and_rejoined(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: status(b)["link"] == "connected", "b connected")
    member_pid = (b.home / "daemon.pid").read_text().strip()
    a.kill()
    took = wait_for(lambda: status(b)["link"] == "lost", "b sees its coordinator lost")
    print(f"coordinator loss noticed in {took:.2f} s")
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stderr
    wait_for(lambda: status(b)["link"] == "connected", "b reconnected by itself")
    wait_for(lambda: state_of(a, "b") == "connected", "a knows b again after its restart")
    # the member's daemon lived through it: same process, nothing stopped
    assert (b.home / "daemon.pid").read_text().strip() == member_pid


def test_flow_down_on_a_member_is_left(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: state_of(a, "b") == "connected", "b connected")
    assert b.flow("down").returncode == 0
    wait_for(lambda: state_of(a, "b") == "left", "b left")


def test_removed_machine_leaves_and_its_key_is_refused(cluster: dict[str, Machine]) -> None:
    a, b = cluster["a"], cluster["b"]
    wait_for(lambda: state_of(a, "b") == "connected", "b connected")
    removed = a.flow("cluster", "remove", "b")
    assert removed.returncode == 0, removed.stderr
    assert state_of(a, "b") is None
    wait_for(lambda: status(b)["link"] == "removed", "b told to leave")
    assert b.flow("down").returncode == 0
    probe = b.python(PROBE, f"tcp://{a.address}:{PORT}", _server_key(a), "member",
                     str(b.home / "cluster" / "keys.json"), "1.5")  # fmt: skip
    assert probe.stdout.split() == ["silent", "refused"], probe.stdout + probe.stderr
    again = b.flow("up", "--machine", "b")  # it must join again with a new token
    assert again.returncode != 0
    assert "has not joined a cluster" in again.stderr + again.stdout
    unknown = a.flow("cluster", "remove", "nosuch")
    assert unknown.returncode == 2
