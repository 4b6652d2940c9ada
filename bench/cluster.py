"""`python -m bench.cluster`: latency and rate across two machines, raw pyzmq against flow.

The machines are two network namespaces joined by veth pairs through a bridge
(tests/netns.py, root only); both systems send over tcp:// with CURVE on: raw pyzmq a
PUSH/PULL pair (bench/nodes/raw_peer.py), flow the bench's own sender and receiver nodes
(bench/nodes) on a tcp:// edge with the machine keys, the ZAP handler and heartbeats that
flow always adds. flow's nodes are released by a stand-in for their daemon's node channel
(one ROUTER here), as the daemon's own start barrier would. Sizes 8 B to 16 MiB, paced
messages for latency then a burst for rate, every message accounted for (`lost`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

from bench.measure import KIB, MIB, label, pace_label, summarize
from bench.run import NODES, STEP_TIMEOUT_S
from bench.tables import _num, _ratio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import netns  # the tests' namespace helpers: one module for both

PACE_S = 0.01
SIZES = [8, KIB, 64 * KIB, MIB, 4 * MIB, 16 * MIB]
COUNTS = {8: (200, 5000), KIB: (200, 5000), 64 * KIB: (100, 1000), MIB: (50, 100),
          4 * MIB: (30, 30), 16 * MIB: (20, 10)}  # fmt: skip
QUICK = {size: (5, 10) for size in SIZES}
HELLO_TIMEOUT_S = 30.0


class Cluster:
    """Two machines, one key pair each, a private FLOW_HOME, and the runs between them."""

    def __init__(self, home: Path, sender: netns.Machine, receiver: netns.Machine) -> None:
        self.home, self.sender, self.receiver = home, sender, receiver
        self.sockets = home / "s"
        self.sockets.mkdir(mode=0o700)
        self.keys = {name: self._key_pair(name) for name in ("a", "b")}

    def _key_pair(self, name: str) -> tuple[str, str, str]:
        public, secret = zmq.curve_keypair()
        path = self.home / f"{name}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secret)
        return public.decode(), secret.decode(), str(path)

    def env(self, size: int, counts: tuple[int, int], **extra: Any) -> dict[str, str]:
        env = {**os.environ, "FLOW_HOME": str(self.home), "PYTHONPATH": str(NODES),
               "BENCH_SIZE": str(size), "BENCH_PACED": f"{counts[0]}@{PACE_S}",
               "BENCH_BURST": str(counts[1]), "BENCH_KIND": "bytes",
               "BENCH_META": "1"}  # fmt: skip
        env.pop("XDG_RUNTIME_DIR", None)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def raw(self, size: int, counts: tuple[int, int], out: Path) -> None:
        public, secret, _ = self.keys["b"]
        endpoint = f"tcp://{self.receiver.address}:{netns.free_port()}"
        env = self.env(size, counts,
                       BENCH_CURVE=json.dumps({"public": public, "secret": secret}))  # fmt: skip
        peer = [sys.executable, str(NODES / "raw_peer.py")]
        recv = subprocess.Popen(self.receiver.argv([*peer, "recv", endpoint]),
                                env={**env, "BENCH_OUT": str(out)},
                                stdout=subprocess.PIPE)  # fmt: skip
        try:
            assert recv.stdout is not None
            recv.stdout.readline()  # bound
            subprocess.run(self.sender.argv([*peer, "send", endpoint]),
                           env={**env, "BENCH_OUT": f"{out}.send"},
                           timeout=STEP_TIMEOUT_S, check=True)  # fmt: skip
            recv.wait(STEP_TIMEOUT_S)
        finally:
            recv.kill()
            recv.wait()

    def flow(self, size: int, counts: tuple[int, int], out: Path) -> None:
        run = str(uuid.uuid4())
        daemon = f"ipc://{self.sockets}/nodes"
        endpoint = f"tcp://{self.receiver.address}:{netns.free_port()}"
        a, b = self.keys["a"], self.keys["b"]
        queue = counts[0] + counts[1] + 10  # nothing is dropped: every message accounted for
        base = {"run": run, "run_name": "bench", "generation": 1, "restarts": 0,
                "daemon": daemon, "descriptor": None, "config": {}}  # fmt: skip
        sender = {**base, "node": "sender", "inputs": {}, "outputs": {"out": [{
            "endpoint": endpoint, "node": "receiver", "input": "in", "queue_size": queue,
            "server_key": b[0]}]},
            "tcp": {"public_key": a[0], "secret_file": a[2], "admitted": []}}  # fmt: skip
        receiver = {**base, "node": "receiver", "outputs": {}, "inputs": {"in": {
            "endpoint": endpoint, "queue_size": queue, "sources": ["sender/out"]}},
            "tcp": {"public_key": b[0], "secret_file": b[2], "admitted": [a[0]]}}  # fmt: skip
        ctx: zmq.Context[Any] = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.bind(daemon)
        children: list[subprocess.Popen[bytes]] = []
        try:
            for machine, cfg, script, result in (
                (self.receiver, receiver, "receiver.py", out),
                (self.sender, sender, "sender.py", f"{out}.send"),
            ):  # fmt: skip
                env = self.env(size, counts, BENCH_OUT=result, BENCH_SDK="flow",
                               BENCH_SETTLE=0.3, FLOW_NODE_CONFIG=json.dumps(cfg))  # fmt: skip
                argv = machine.argv([sys.executable, str(NODES / script)])
                children.append(subprocess.Popen(argv, env=env))
            _release(router, {"sender", "receiver"})
            for child in reversed(children):  # the sender first: it ends first
                child.wait(STEP_TIMEOUT_S)
        finally:
            for child in children:
                child.kill()
                child.wait()
            ctx.destroy(linger=0)
            Path(daemon.removeprefix("ipc://")).unlink(missing_ok=True)


def _release(router: zmq.Socket[Any], nodes: set[str]) -> None:
    """The start barrier of a daemon: every node's hello, then `start` to each."""
    peers: dict[str, bytes] = {}
    deadline = time.monotonic() + HELLO_TIMEOUT_S
    while set(peers) != nodes:
        left = deadline - time.monotonic()
        if left <= 0 or not router.poll(int(left * 1000) + 1):
            raise RuntimeError(f"no hello from {sorted(nodes - set(peers))}")
        identity, frame = router.recv_multipart()
        message = json.loads(frame)
        if message.get("t") == "hello":
            peers[message["node"]] = identity
    for identity in peers.values():
        router.send_multipart([identity, b'{"t":"start"}'])


def _lat(r: dict[str, Any]) -> str:
    return f"{_num(r.get('p50_us'))}/{_num(r.get('p99_us'))}" if r else "-"


def _flat(out: Path, size: int, counts: tuple[int, int]) -> dict[str, Any]:
    """One run's figures as this table shows them (paced latency, burst rate)."""
    send = json.loads(Path(f"{out}.send").read_text())
    got = summarize(send, [json.loads(out.read_text())], [(counts[0], PACE_S)], counts[1])
    paced, rate = got[pace_label(PACE_S)], got["burst"]["msgs_per_s"]
    return {"p50_us": paced["p50_us"], "p99_us": paced["p99_us"], "msgs_per_s": rate,
            "mib_per_s": rate * size / MIB if rate else None, "lost": got["lost"]}  # fmt: skip


def table(sizes: dict[str, dict[str, Any]]) -> str:
    rows = ["| size | raw p50/p99 us | flow p50/p99 us | flow/raw p50 | raw msg/s | "
            "flow msg/s | flow/raw thr | raw MiB/s | flow MiB/s | lost (raw/flow) |",
            "|" + "---|" * 10]  # fmt: skip
    for size_label, by in sizes.items():
        raw, flow = by.get("raw", {}), by.get("flow", {})
        rows.append(
            f"| {size_label} | {_lat(raw)} | {_lat(flow)} | "
            f"{_ratio(flow.get('p50_us'), raw.get('p50_us'))} | "
            f"{_num(raw.get('msgs_per_s'))} | {_num(flow.get('msgs_per_s'))} | "
            f"{_ratio(flow.get('msgs_per_s'), raw.get('msgs_per_s'))} | "
            f"{_num(raw.get('mib_per_s'))} | {_num(flow.get('mib_per_s'))} | "
            f"{raw.get('lost', '-')}/{flow.get('lost', '-')} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few messages per size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    reason = netns.skip_reason()
    if reason is not None:
        print(f"bench.cluster: {reason}", file=sys.stderr)
        return 2
    counts = QUICK if args.quick else COUNTS
    sizes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fb", dir="/tmp") as tmp, netns.machines(2) as (
        a, b,
    ):  # fmt: skip
        os.chmod(tmp, 0o700)
        cluster = Cluster(Path(tmp), a, b)
        for size in SIZES:
            by = sizes[label(size)] = {}
            for system in ("raw", "flow"):  # interleaved, size by size
                out = Path(tmp) / f"{system}-{size}.json"
                getattr(cluster, system)(size, counts[size], out)
                by[system] = _flat(out, size, counts[size])
                print(f"{label(size)} {system}: {by[system]}", file=sys.stderr, flush=True)
    print(table(sizes))
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": sizes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
