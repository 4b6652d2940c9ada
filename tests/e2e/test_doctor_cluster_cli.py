"""`flow doctor --cluster` on one host: its refusals, each one line, and a coordinator alone."""

from __future__ import annotations

import socket
from pathlib import Path

from helpers import daemon_down, flow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_probe_options_without_cluster_are_refused(flow_home: Path) -> None:
    done = flow("doctor", "--timeout", "1s", home=flow_home)
    assert done.returncode == 2
    assert "--timeout and --large go with --cluster" in _one_line(done.stderr)
    bad = flow("doctor", "--cluster", "--large", "lots", home=flow_home)
    assert bad.returncode == 2
    assert "invalid size 'lots'" in bad.stderr


def test_probing_needs_a_coordinator(daemon: Path, tmp_path: Path) -> None:
    done = flow("doctor", "--cluster", home=daemon)
    assert done.returncode == 2
    assert "coordinates no cluster" in _one_line(done.stderr)
    missing = flow("doctor", "--cluster", str(tmp_path / "nope.yml"), home=daemon)
    assert missing.returncode == 2
    assert "no such dataflow file" in _one_line(missing.stderr)


def test_a_coordinator_alone_has_no_link_to_probe(flow_home: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    up = flow("up", "--machine", "a", "--listen", address, home=flow_home)
    assert up.returncode == 0, up.stderr
    try:
        done = flow("doctor", "--cluster", home=flow_home)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no link to probe" in _one_line(done.stdout)
        # a dataflow on one machine: its edges are listed as local, nothing probed
        (tmp_path / "n.py").write_text("")
        (tmp_path / "one.yml").write_text(
            "nodes:\n  - id: s\n    path: n.py\n    inputs: {tick: dora/timer/millis/10}\n"
            "    outputs: [o]\n  - id: r\n    path: n.py\n    inputs: {i: s/o}\n")
        local = flow("doctor", "--cluster", str(tmp_path / "one.yml"), home=flow_home)
        assert local.returncode == 0, local.stdout + local.stderr
        assert local.stdout.splitlines()[1].split()[:3] == ["a", "a", "local"]
        # a dataflow that names an unknown machine: the start's own refusal
        (tmp_path / "far.yml").write_text(
            "nodes:\n  - id: s\n    path: n.py\n    deploy: {machine: mars}\n"
            "    inputs: {tick: dora/timer/millis/10}\n")
        far = flow("doctor", "--cluster", str(tmp_path / "far.yml"), home=flow_home)
        assert far.returncode != 0
        assert "mars" in far.stderr, far.stderr
    finally:
        daemon_down(flow_home)
