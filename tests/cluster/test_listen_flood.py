"""A flood of silent TCP connections to the coordinator's port, from a host with no key
and no token, never ends the daemon (daemon/cluster/listen_guard.py): each held one of its
descriptors, and at the open-file limit libzmq aborts the daemon at its next ipc:// accept.
The port closes while descriptors run short, the links already made go on, and it opens
again once the flood is over."""

from __future__ import annotations

import subprocess
import sys

from helpers import wait_for
from netns import PORT, Machine
from procs import daemon_pid

LIMIT = 1024  # the daemon's open-file limit for the test (the lowest it starts with)
FLOOD = """
import resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
address, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
held, deadline = [], time.monotonic() + seconds
while time.monotonic() < deadline:  # new connections all along, the newest `count` held
    try:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((address, port))  # never a byte sent: a handshake that never starts
        held.append(s)
    except OSError:
        time.sleep(0.01)
    if len(held) > count:
        held.pop(0).close()
"""


def test_a_connection_flood_closes_the_port_for_a_while_and_the_daemon_lives(
    cluster: dict[str, Machine],
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    assert a.home is not None
    pid = daemon_pid(a.home)
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={LIMIT}:{LIMIT}"], check=True)
    log = a.home / "daemon.log"
    flood = subprocess.Popen(c.argv([sys.executable, "-c", FLOOD, a.address, str(PORT),
                                     str(2 * LIMIT), "3"]))  # fmt: skip
    try:
        wait_for(lambda: "closed to new connections" in log.read_text(), "the port never closed")
        status = a.flow("cluster", "status", "--json")  # an ipc:// accept while it is short
        assert status.returncode == 0, status.stderr
        assert '"state": "connected"' in status.stdout  # b's link goes on
    finally:
        flood.wait(timeout=60)
    assert daemon_pid(a.home) == pid  # the same daemon, alive
    wait_for(lambda: "listening on" in log.read_text().split("closed to new connections")[-1],
             "the port never opened again")  # fmt: skip
    assert b.flow("cluster", "status").returncode == 0
