"""Machines for cluster tests: Linux network namespaces on one bridge, each its own FLOW_HOME.

Each test gets a bridge and namespaces named from a random id (interface names stay under
15 characters, so parallel xdist workers never meet), addresses in 10.<a>.<b>.0/24, and a
teardown that kills every process left in a namespace before deleting it. A partition is
the machine's veth set down on the bridge side; a machine loss is killing every process in
its namespace (`ip netns pids`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
from helpers import BOUND_S, REPO

from node_sdk.paths import socket_dir

# short settings: a test sees `lost` in about a second (docs/cluster.md gives the bound)
HEARTBEAT_S = 0.25
LOST_AFTER_S = 1.5
GRACE_S = 4.0  # a lost machine's nodes are waited for this long (cluster_grace)
PORT = 7890  # every machine has a network of its own: no other test can hold it
IP_TIMEOUT_S = 10.0


def namespaces_unavailable() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "cluster tests build machines as network namespaces: they need root"
    if shutil.which("ip") is None:
        return "cluster tests need iproute2's `ip` (ip netns)"
    tag = secrets.token_hex(3)
    steps = (
        ["netns", "add", f"fq{tag}"],
        ["link", "add", f"fqb{tag}", "type", "bridge"],
        ["link", "add", f"fqv{tag}", "type", "veth", "peer", "name", f"fqp{tag}"],
    )
    try:
        for step in steps:
            made = subprocess.run(["ip", *step], capture_output=True, text=True, check=False)
            if made.returncode != 0:
                return f"`ip {' '.join(step[:2])}` fails here: {made.stderr.strip()[:200]}"
        return None
    finally:
        for undo in (["netns", "delete", f"fq{tag}"], ["link", "delete", f"fqb{tag}"],
                     ["link", "delete", f"fqv{tag}"]):  # fmt: skip
            subprocess.run(["ip", *undo], capture_output=True, check=False)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S,
                          check=False)  # fmt: skip
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"


@attrs.define
class Machine:
    """One host: a namespace, its address on the bridge, its FLOW_HOME."""

    name: str
    netns: str
    address: str
    home: Path
    bridge_side: str  # the veth end on the bridge: set down, the machine is cut off

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FLOW_HOME=str(self.home),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            FLOW_CLUSTER_HEARTBEAT=f"{HEARTBEAT_S}s",
            FLOW_CLUSTER_LOST_AFTER=f"{LOST_AFTER_S}s",
            FLOW_CLUSTER_GRACE=f"{GRACE_S}s",
        )
        env.pop("XDG_RUNTIME_DIR", None)
        env.update(extra)
        return env

    def run(self, *argv: str, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """A command run on this machine (inside its namespace, with its FLOW_HOME)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            env=self.env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def flow(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "cli", *args, input=input)

    def python(self, source: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-c", source, *args)

    def pids(self) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True,
                              text=True, check=False)  # fmt: skip
        return [int(word) for word in done.stdout.split()]

    def kill_everything(self) -> None:
        """The machine dies: every process in its namespace, SIGKILL, now."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def cut(self) -> None:
        _ip("link", "set", self.bridge_side, "down")

    def mend(self) -> None:
        _ip("link", "set", self.bridge_side, "up")


@contextlib.contextmanager
def machines(names: tuple[str, ...]) -> Iterator[dict[str, Machine]]:
    """Machines `names` on one fresh bridge; everything they started is killed at the end."""
    tag = secrets.token_hex(3)
    subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
    bridge = f"fb{tag}"
    made: dict[str, Machine] = {}
    root = Path(tempfile.mkdtemp(prefix="fc", dir="/tmp"))
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for index, name in enumerate(names):
            netns, outer, inner = f"fn{tag}{index}", f"fv{tag}{index}", f"fp{tag}{index}"
            address = f"{subnet}.{index + 1}"
            _ip("netns", "add", netns)
            made[name] = Machine(name, netns, address, root / name, outer)
            (root / name).mkdir(mode=0o700)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", netns)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", netns, "link", "set", inner, "up")
            _ip("-n", netns, "link", "set", "lo", "up")
        yield made
    finally:
        for machine in made.values():
            machine.kill_everything()
        deadline = time.monotonic() + BOUND_S
        while any(m.pids() for m in made.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for machine in made.values():
            subprocess.run(["ip", "netns", "delete", machine.netns], capture_output=True,
                           check=False)  # fmt: skip
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
        for machine in made.values():  # sockets live outside the home
            shutil.rmtree(socket_dir(machine.home), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
