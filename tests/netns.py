"""Machines for tests: Linux network namespaces joined by veth pairs through a bridge.

`machines(n)` makes n namespaces, each with one interface `eth0` at `10.<net>.0.<i+1>/24`,
its veth peer enslaved to a bridge in a hub namespace of its own (so nothing is added to
the host's namespace but for an instant, and parallel tests never see each other). Every
name carries a random tag; everything is torn down on exit, even when the test fails.
A machine's processes run with `machine.argv([...])` (`ip netns exec`), share the host's
filesystem (so `ipc://` sockets and FLOW_HOME folders reach across) and its /dev/shm; only
the network is apart. A partition is `machine.link(False)`; a machine loss is `machine.kill()`.

`hosts(labels)` gives the cluster tests (tests/cluster/) machines named by labels, each with
a private FLOW_HOME of its own and the short cluster settings below, which run the real
`flow` CLI and daemons inside their namespace (`machine.flow(...)`).

Needs root (CI runs as root) and `ip`; `skip_reason()` says why not, for `pytest.skip`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from helpers import BOUND_S, REPO, run_captured

from node_sdk.paths import socket_dir

IP_TIMEOUT_S = 10.0
# the cluster tests' short settings: a test sees `lost` in about a second (docs/cluster.md)
HEARTBEAT_S = 0.25
LOST_AFTER_S = 1.5
GRACE_S = 4.0  # a lost machine's nodes are waited for this long (cluster_grace)
PORT = 7890  # every machine has a network of its own: no other test can hold it


def skip_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can (one is made and
    deleted to find out: a container may have `ip` and root and still refuse)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); CI runs the tests as root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces"
    probe = f"flowprobe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` fails here: {str(exc)[:200]}"
    with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
        ip("netns", "del", probe)
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
    home: Path | None = None  # its FLOW_HOME, for the machines `hosts()` makes
    grace_s: float = GRACE_S  # its cluster_grace (FLOW_CLUSTER_GRACE)

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

    def drop_large(self) -> None:
        """Lose every IP packet of 1024 bytes or more this machine sends, without a word,
        while smaller ones pass: large messages vanish one way only (dora #1778). tc's
        `drop` action is not built everywhere; a redirect to a veth that is down (`mirred`)
        loses them the same way. Needs `tc`; raises RuntimeError when it cannot."""
        ip("-n", self.name, "link", "add", "sink0", "type", "veth", "peer", "name", "sink1")
        tc = ["ip", "netns", "exec", self.name, "tc"]
        commands = [[*tc, "qdisc", "add", "dev", "eth0", "clsact"]]
        # the IP total length (offset 2) at or above 1024, one bit pattern per power of two
        for value, mask in ((0x0400, 0xFC00), (0x0800, 0xF800), (0x1000, 0xF000),
                            (0x2000, 0xE000), (0x4000, 0xC000), (0x8000, 0x8000)):  # fmt: skip
            commands.append([*tc, "filter", "add", "dev", "eth0", "egress", "protocol", "ip",
                             "u32", "match", "u16", hex(value), hex(mask), "at", "2",
                             "action", "mirred", "egress", "redirect", "dev", "sink0"])  # fmt: skip
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=IP_TIMEOUT_S, check=False)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[4:])}: {done.stderr.strip()}")

    def env(self) -> dict[str, str]:
        """The environment of a command run on this machine: its FLOW_HOME, the short
        cluster settings."""
        env = dict(os.environ)
        env.update(
            FLOW_HOME=str(self.home),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            FLOW_CLUSTER_HEARTBEAT=f"{HEARTBEAT_S}s",
            FLOW_CLUSTER_LOST_AFTER=f"{LOST_AFTER_S}s",
            FLOW_CLUSTER_GRACE=f"{self.grace_s}s",
        )
        env.pop("XDG_RUNTIME_DIR", None)
        return env

    def run(self, *argv: str, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """A command run on this machine (inside its namespace, with its FLOW_HOME)."""
        return run_captured(self.argv(list(argv)), self.env(), input=input, timeout=timeout)

    def flow(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "cli", *args, input=input)

    def python(self, source: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-c", source, *args)


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


@contextlib.contextmanager
def hosts(labels: tuple[str, ...]) -> Iterator[dict[str, Machine]]:
    """Machines named `labels`, each with its own FLOW_HOME (0700); at the end every process
    on them is killed and waited for, and their homes and socket folders are removed."""
    root = Path(tempfile.mkdtemp(prefix="fc", dir="/tmp"))
    try:
        with machines(len(labels)) as made:
            homed: dict[str, Machine] = {}
            for label, machine in zip(labels, made, strict=True):
                (root / label).mkdir(mode=0o700)
                homed[label] = replace(machine, home=root / label)
            try:
                yield homed
            finally:
                for machine in homed.values():
                    machine.kill()
                deadline = time.monotonic() + BOUND_S
                while any(m.pids() for m in homed.values()) and time.monotonic() < deadline:
                    time.sleep(0.05)
    finally:
        for label in labels:  # sockets live outside the home
            shutil.rmtree(socket_dir(root / label), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def connected(coordinator: Machine, name: str) -> bool:
    """`flow cluster status` on the coordinator shows machine `name` connected."""
    done = coordinator.flow("cluster", "status", "--json")
    rows = {row["name"]: row for row in json.loads(done.stdout)["machines"]}
    return name in rows and rows[name]["state"] == "connected"


def run_info(coordinator: Machine, run: str) -> dict[str, Any]:
    """The run (by id or name) as the coordinator's `flow list --all --json` shows it."""
    done = coordinator.flow("list", "--all", "--json")
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    return next(r for r in runs if run in (r["id"], r["name"]))
