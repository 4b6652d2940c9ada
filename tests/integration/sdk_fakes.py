"""The fake daemon of the SDK's process tests, and the node configurations it hands out."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

BOUND_S = 15.0  # a safety bound on every wait, never an assertion about speed


class FakeDaemon:
    """The daemon's side of the node channel: a ROUTER answering `hello` with `start`."""

    def __init__(self, sockdir: Path) -> None:
        self.endpoint = f"ipc://{sockdir}/nodes"
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind(self.endpoint)
        self.peers: dict[str, bytes] = {}
        self.byes: set[str] = set()

    def _recv(self, timeout_s: float) -> tuple[bytes, dict[str, Any]] | None:
        if not self.router.poll(int(timeout_s * 1000)):
            return None
        identity, frame = self.router.recv_multipart()
        return identity, json.loads(frame)

    def _handle(self, identity: bytes, message: dict[str, Any]) -> None:
        if message["t"] == "hello":
            assert (
                identity == f"{message['run']}/{message['node']}/{message['generation']}".encode()
            )
            assert message["pid"] > 0
            self.peers[message["node"]] = identity
        elif message["t"] == "bye":
            self.byes.add(identity.decode().split("/")[1])

    def wait_for(self, what: str, nodes: set[str]) -> None:
        deadline = time.monotonic() + BOUND_S
        seen = self.peers.keys() if what == "hello" else self.byes
        while not nodes <= set(seen):
            got = self._recv(deadline - time.monotonic())
            assert got is not None, f"no {what} from {sorted(nodes - set(seen))}"
            self._handle(*got)

    def send(self, node: str, message: dict[str, Any]) -> None:
        self.router.send_multipart([self.peers[node], json.dumps(message).encode()])

    def start_all(self) -> None:
        for node in self.peers:
            self.send(node, {"t": "start"})

    def close(self) -> None:
        self.router.close(linger=0)
        self.ctx.term()


def make_configs(
    daemon: FakeDaemon,
    sockdir: Path,
    *,
    policy: str = "drop_oldest",
    queue_size: int = 10,
    receiver_bound: bool = True,
    output: str = "out",
    input_id: str = "in",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configs of `sender/<output>` -> `receiver/<input_id>`, as the daemon would write them."""
    run = str(uuid.uuid4())
    endpoint = f"ipc://{sockdir}/{run[:8]}-n1i0" if receiver_bound else f"ipc://{sockdir}/none"
    base = {"run": run, "run_name": "t", "generation": 1, "restarts": 0,
            "daemon": daemon.endpoint, "descriptor": None, "config": {}}  # fmt: skip
    edge = {"endpoint": endpoint, "node": "receiver", "input": input_id, "policy": policy,
            "queue_size": queue_size}  # fmt: skip
    sender = {**base, "node": "sender", "inputs": {}, "outputs": {output: [edge]}}
    receiver = {**base, "node": "receiver", "outputs": {}, "inputs": {input_id: {
        "endpoint": endpoint, "queue_size": queue_size, "policy": policy,
        "sources": [f"sender/{output}"]}}}  # fmt: skip
    return sender, receiver


def finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = child.communicate(timeout=BOUND_S)
    assert child.returncode == 0, f"exit {child.returncode}\n{out}\n{err}"
    return out, err


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
