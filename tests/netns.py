"""Machines for tests: Linux network namespaces joined by veth pairs through a bridge.

`machines(n)` makes n namespaces, each with one interface `eth0` at `10.<net>.0.<i+1>/24`,
its veth peer enslaved to a bridge in a hub namespace of its own (so nothing is added to
the host's namespace but for an instant, and parallel tests never see each other). Every
name carries a random tag; everything is torn down on exit, even when the test fails.
A machine's processes run with `machine.argv([...])` (`ip netns exec`), share the host's
filesystem (so `ipc://` sockets and FLOW_HOME folders reach across) and its /dev/shm; only
the network is apart. A partition is `machine.link(False)`; a machine loss is `machine.kill()`.

Needs root (CI runs as root) and `ip`; `skip_reason()` says why not, for `pytest.skip`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

IP_TIMEOUT_S = 10.0


def skip_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); CI runs the tests as root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces"
    return None


def ip(*args: str) -> str:
    """Run `ip ARGS` (raises with its stderr when it fails); its stdout."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Machine:
    """One namespace: `name` (for `ip netns exec`), its `address` on the shared link."""

    name: str
    address: str
    hub: str  # the hub namespace holding the bridge
    port: str  # this machine's veth end on the bridge, in the hub

    def argv(self, command: list[str]) -> list[str]:
        """`command` run inside this machine's network namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def link(self, up: bool) -> None:
        """Plug (True) or unplug (False) this machine's cable: a partition, both ways."""
        ip("-n", self.hub, "link", "set", self.port, "up" if up else "down")

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.name).split()]

    def kill(self) -> None:
        """SIGKILL every process in this namespace (a machine lost with everything on it)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def machines(count: int = 2) -> Iterator[list[Machine]]:
    """`count` machines on one link (at most 200), torn down on exit."""
    tag = secrets.token_hex(3)  # interface names are at most 15 bytes: keep them short
    net = secrets.randbelow(200) + 20  # the subnet: only for readable addresses in logs
    hub = f"flowhub-{tag}"
    made: list[Machine] = []
    namespaces = [hub]
    try:
        ip("netns", "add", hub)
        ip("-n", hub, "link", "add", "br0", "type", "bridge")
        ip("-n", hub, "link", "set", "br0", "up")
        for i in range(count):
            name = f"flowm{i}-{tag}"
            ip("netns", "add", name)
            namespaces.append(name)
            port = f"fv{tag}{i}"
            # made inside the hub, so no name ever lands in the host's namespace
            ip("-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", name)  # fmt: skip
            ip("-n", hub, "link", "set", port, "master", "br0")
            ip("-n", hub, "link", "set", port, "up")
            address = f"10.{net}.0.{i + 1}"
            ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", name, "link", "set", "lo", "up")
            made.append(Machine(name, address, hub, port))
        yield made
    finally:
        for machine in made:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                machine.kill()
        for name in reversed(namespaces):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ip("netns", "del", name)  # takes its interfaces (and the bridge) with it


def free_port() -> int:
    """A port number for a test's tcp:// endpoint inside fresh namespaces: every namespace
    is new and empty, so any port in the ephemeral range is free there."""
    return 20000 + secrets.randbelow(20000)
