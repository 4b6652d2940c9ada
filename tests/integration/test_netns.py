"""tests/netns.py itself: three machines reach each other, a pulled cable partitions one,
`kill` empties one, and nothing is left behind (root only)."""

from __future__ import annotations

import subprocess
import sys

import netns
import pytest

BOUND_S = 20.0

SERVE = """
import socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"hi")
    conn.close()
"""

ASK = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0) as conn:
        print(conn.recv(2).decode())
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    reason = netns.skip_reason()
    if reason is not None:
        pytest.skip(reason)


def ask(machine: netns.Machine, address: str, port: int) -> str:
    done = subprocess.run(machine.argv([sys.executable, "-c", ASK, address, str(port)]),
                          capture_output=True, text=True, timeout=BOUND_S, check=True)  # fmt: skip
    return done.stdout.strip()


def test_machines_link_partition_and_loss() -> None:
    port = netns.free_port()
    with netns.machines(3) as (a, b, c):
        names = {a.name, b.name, c.name}
        server = subprocess.Popen(c.argv([sys.executable, "-c", SERVE, str(port)]),
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            assert ask(a, c.address, port) == "hi"
            assert ask(b, c.address, port) == "hi"
            assert ask(a, "127.0.0.1", port) == "ConnectionRefusedError"  # its own host
            c.link(False)
            assert ask(a, c.address, port) == "TimeoutError"  # no answer at all
            c.link(True)
            assert ask(b, c.address, port) == "hi"
            assert c.pids() == [server.pid]
            c.kill()
            assert server.wait(BOUND_S) == -9
        finally:
            server.kill()
            server.communicate()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not any(name in left.stdout for name in names)
