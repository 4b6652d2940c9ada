"""The `tcp` keys of FLOW_NODE_CONFIG and the machine key file: one clear NodeError each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import zmq

from node_sdk import config
from node_sdk.errors import NodeError
from node_sdk.tcp import load_secret


def key_file(folder: Path, mode: int = 0o600, text: str | None = None) -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    path = folder / "machine.key"
    path.write_text(text if text is not None else secret.decode() + "\n")
    path.chmod(mode)
    return public.decode(), str(path)


def base(tmp_path: Path, *, tcp: bool = True, server_key: bool = True) -> dict[str, Any]:
    public, path = key_file(tmp_path)
    edge: dict[str, Any] = {"endpoint": "tcp://10.0.0.2:7000", "node": "b", "input": "in"}
    if server_key:
        edge["server_key"] = public
    raw: dict[str, Any] = {
        "run": "r", "node": "a", "daemon": "ipc:///d", "config": {},
        "inputs": {"in": {"endpoint": "tcp://0.0.0.0:7001", "sources": ["b/out"]}},
        "outputs": {"out": [edge]},
    }  # fmt: skip
    if tcp:
        raw["tcp"] = {"public_key": public, "secret_file": path, "admitted": [public]}
    return raw


def test_a_tcp_config_round_trips(tmp_path: Path) -> None:
    cfg = config.from_json(base(tmp_path), "cfg")
    assert cfg.tcp is not None
    assert cfg.outputs["out"][0].server_key == cfg.tcp.public_key
    assert config.parse(config.dumps(cfg)) == cfg
    assert load_secret(cfg.tcp)  # the file matches the public key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("tcp"), "$.tcp is required: input 'in' is bound on tcp://"),
        (lambda r: r["outputs"]["out"][0].pop("server_key"),
         "$.outputs.out[0].server_key is required: the receiver is on tcp:// (CURVE)"),
        (lambda r: r["tcp"].update(admitted=[]), "$.tcp.admitted is empty"),
        (lambda r: r["tcp"].update(public_key="short"), "$.tcp.public_key must be a CURVE"),
        (lambda r: r["tcp"].update(admitted=["x" * 39 + "~"]), "$.tcp.admitted must be a CURVE"),
        (lambda r: r["tcp"].update(secret_file="machine.key"), "must be an absolute path"),
        (lambda r: r["tcp"].update(heartbeat_timeout_s=0), "heartbeat_timeout_s must be a number"),
    ],
)  # fmt: skip
def test_bad_tcp_keys_are_named(tmp_path: Path, change: Any, message: str) -> None:
    raw = base(tmp_path)
    change(raw)
    with pytest.raises(NodeError) as caught:
        config.from_json(raw, "bad FLOW_NODE_CONFIG")
    assert message in str(caught.value)


def test_an_edge_without_tcp_keys_is_refused(tmp_path: Path) -> None:
    raw = base(tmp_path)
    raw["inputs"] = {}
    del raw["tcp"]
    with pytest.raises(NodeError, match=r"\$\.tcp is required: output 'out' sends over tcp://"):
        config.from_json(raw, "bad FLOW_NODE_CONFIG")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    public, path = key_file(tmp_path, 0o644)
    tcp = config.TcpSecurity(public, path, (public,))
    with pytest.raises(NodeError, match=r"mode 0o644 lets others read it \(chmod 600\)"):
        load_secret(tcp)


def test_a_key_file_that_does_not_match_or_is_not_a_key_is_refused(tmp_path: Path) -> None:
    public, path = key_file(tmp_path)
    other = zmq.curve_keypair()[0].decode()
    with pytest.raises(NodeError, match="does not match the configured public key"):
        load_secret(config.TcpSecurity(other, path, ()))
    os.unlink(path)
    public, path = key_file(tmp_path, text="not a key\n")
    with pytest.raises(NodeError, match="not a CURVE secret key"):
        load_secret(config.TcpSecurity(public, path, ()))
    with pytest.raises(NodeError, match="cannot open"):
        load_secret(config.TcpSecurity(public, str(tmp_path / "absent"), ()))


def test_a_zmq_certificate_file_is_read(tmp_path: Path) -> None:
    public, secret = zmq.curve_keypair()
    path = tmp_path / "m.key_secret"
    path.write_text(f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
                    f'    secret-key = "{secret.decode()}"\n')  # fmt: skip
    path.chmod(0o600)
    assert load_secret(config.TcpSecurity(public.decode(), str(path), ())) == secret


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    public, path = key_file(tmp_path)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(NodeError, match="cannot open"):
        load_secret(config.TcpSecurity(public, str(link), ()))
