"""Test helpers about processes and the raw control socket: liveness, node processes, attacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from daemon.model.parts import END
from daemon.model.pids import alive
from node_sdk import paths

# how long a process that was killed, or told to end, may take to be gone: a safety bound,
# not a speed test (a SIGKILLed node outlasted 5 s once on a loaded CI machine)
GONE_S = 30.0

def dead_pid() -> int:
    """The pid of a process that has ended and been reaped (no process has it, for now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait (bounded) for the processes to exit; the ones still alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def daemon_pid(home: Path) -> int:
    return int(paths.daemon_pid_file(home).read_text())


def keeper_pid(home: Path, run_id: str) -> int:
    """The pid of the run's keeper process (found by its socket folder on its command line)."""
    folder = str(paths.run_socket_dir(paths.socket_dir(home), run_id)).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"daemon.keeper" in cmdline and folder in cmdline and alive(int(entry)):
            return int(entry)
    raise AssertionError(f"no keeper process for run {run_id}")


def node_processes(run_id: str) -> dict[str, list[int]]:
    """node id -> pids of live processes that are that node of that run."""
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FLOW_DATAFLOW={run_id}".encode() not in environ or not alive(int(entry)):
            continue
        for item in environ:
            if item.startswith(b"FLOW_NODE_CONFIG="):
                node = json.loads(item.partition(b"=")[2])["node"]
                found.setdefault(node, []).append(int(entry))
    return found


def receive_reply(socket: zmq.Socket[bytes], timeout: float = 10.0) -> bytes | None:
    """The next reply on a DEALER without an empty delimiter, its parts joined; None when
    a message does not come within `timeout`."""
    chunks: list[bytes] = []
    while socket.poll(int(timeout * 1000)):
        frames = socket.recv_multipart()
        if len(frames) == 1:
            return frames[0]
        chunks.append(frames[-1])  # [PART or END, chunk]
        if frames[0] == END:
            return b"".join(chunks)
    return None


class RawClient:
    """A control-socket client that can send anything, for attacking the daemon."""

    def __init__(self, home: Path) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(paths.control_endpoint(home))

    def send_raw(self, payload: bytes) -> None:
        self.socket.send(payload)

    def receive(self, timeout: float = 10.0) -> dict[str, Any] | None:
        frame = self.receive_frame(timeout)
        if frame is None:
            return None
        reply: dict[str, Any] = json.loads(frame)
        return reply

    def receive_frame(self, timeout: float = 10.0) -> bytes | None:
        """One reply's bytes: a reply over 32 KiB comes in parts, joined here."""
        return receive_reply(self.socket, timeout)

    def request(
        self, type_: str, body: dict[str, Any], *, v: Any = 1, id_: str = "r1"
    ) -> dict[str, Any]:
        self.send_raw(json.dumps({"v": v, "id": id_, "type": type_, "body": body}).encode())
        reply = self.receive()
        assert reply is not None, f"no reply to {type_}"
        assert reply["id"] == id_
        return reply

    def close(self) -> None:
        self.context.destroy(linger=0)
