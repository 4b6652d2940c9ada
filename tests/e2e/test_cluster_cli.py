"""The cluster options and commands on one host: refusals, and a plain loopback cluster."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import psutil
import pytest
import zmq
from helpers import BOUND_S, daemon_down, flow

from cli.commands import up
from cli.errors import CliError
from daemon.model import cluster as cluster_model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--machine", "a", "--listen", "tcp://10.1.2.3:7000", "--insecure-loopback"),
         "refused on a non-loopback address"),
        (("--machine", "a", "--listen", "tcp://0.0.0.0:7000", "--insecure-loopback"),
         "refused on a non-loopback address"),
        (("--listen", "tcp://127.0.0.1:7000"), "need --machine"),
        (("--machine", "a", "--insecure-loopback"), "goes with --listen"),
        (("--machine", "a", "--listen", "udp://127.0.0.1:7000"), "expected tcp://"),
        (("--machine", "a/b", "--listen", "tcp://127.0.0.1:7000"), "machine name"),
        (("--machine", "a", "--join", "flow-join.!!"), "join token"),
    ],
)
def test_unusable_cluster_options_are_one_line(
    flow_home: Path, args: tuple[str, ...], says: str
) -> None:
    done = flow("up", *args, home=flow_home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert flow("status", home=flow_home).returncode == 3  # nothing was started


def test_a_machine_that_never_joined_is_refused(flow_home: Path) -> None:
    done = flow("up", "--machine", "b", home=flow_home)
    assert done.returncode == 1
    assert "has not joined a cluster" in done.stdout + done.stderr


def test_cluster_commands_need_a_coordinator(daemon: Path) -> None:
    token = flow("cluster", "token", home=daemon)
    assert token.returncode == 2
    assert "coordinates no cluster" in token.stderr
    shown = flow("cluster", "status", "--json", home=daemon)
    assert json.loads(shown.stdout)["role"] == "none"


def test_plain_loopback_cluster_when_asked_for(flow_home: Path, tmp_path: Path) -> None:
    member_home = tmp_path / "member"
    member_home.mkdir(mode=0o700)
    address = f"tcp://127.0.0.1:{_free_port()}"
    up = flow("up", "--machine", "a", "--listen", address, "--insecure-loopback", home=flow_home)
    assert up.returncode == 0, up.stderr
    try:
        token = flow("cluster", "token", home=flow_home).stdout.strip()
        joined = flow("up", "--machine", "b", "--join", "-", input=token + "\n", home=member_home)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        try:
            for _ in range(int(BOUND_S / 0.1)):
                rows = json.loads(flow("cluster", "status", "--json", home=flow_home).stdout)
                if [m["state"] for m in rows["machines"]] == ["connected", "connected"]:
                    break
            else:
                pytest.fail(f"b never connected: {rows}")
            log = (flow_home / "daemon.log").read_text()
            assert "PLAIN TCP (--insecure-loopback)" in log
        finally:
            daemon_down(member_home)
    finally:
        daemon_down(flow_home)


def test_an_address_not_of_this_host_fails_the_start_in_one_line(flow_home: Path) -> None:
    done = flow("up", "--machine", "a", "--listen", "tcp://192.0.2.1:7890", home=flow_home)
    assert done.returncode == 1
    assert "cannot listen on tcp://192.0.2.1:7890" in done.stderr
    assert flow("status", home=flow_home).returncode == 3


def test_a_join_that_does_not_end_is_stopped_within_its_bound(
    flow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a coordinator that takes the TCP connection and never speaks: the join process waits
    # its own 10 s for an answer; `flow up` stops it at its bound (shortened here)
    monkeypatch.setattr(cluster_model, "JOIN_TIMEOUT_S", 0.5)
    monkeypatch.setattr(up, "JOIN_SLACK_S", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        server_key, _ = zmq.curve_keypair()
        _, admission = zmq.curve_keypair()
        token = cluster_model.JoinToken(
            address=f"tcp://127.0.0.1:{silent.getsockname()[1]}",
            server_key=server_key.decode(),
            admission_secret=admission.decode(),
        )
        started = time.monotonic()
        with pytest.raises(CliError, match=r"the join did not end within 1\.5 s") as refused:
            up.join_cluster(flow_home, "b", token.text())
        took = time.monotonic() - started
    assert len(str(refused.value).splitlines()) == 1
    assert took < 1.5 + BOUND_S / 2, took
    assert not [p for p in psutil.Process().children(recursive=True)
                if "join" in p.cmdline()]  # fmt: skip
    assert flow("status", home=flow_home).returncode == 3  # nothing was started
