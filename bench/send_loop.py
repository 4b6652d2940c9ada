"""`python -m bench.send_loop`: what one small message costs flow's sender in a loop, against
raw pyzmq's `send_multipart` on the same kind of socket, both to a PULL another process drains
(docs/performance.md, "A small message's send"). `--kind arrow|struct` sends a pyarrow
uint8 array or a struct of two uint32 fields (raw pyzmq: its buffers), `--meta` a small
metadata dict with each (raw: as JSON in a first frame), as the bench's senders do."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from node_sdk import config
from node_sdk.send import Sender

ROUNDS = 5  # alternated: flow, raw, flow, raw...


# the receiver: another process (a thread here would take the GIL from the sender)
DRAIN = """
import sys, zmq
pull = zmq.Context().socket(zmq.PULL)
pull.rcvhwm = 0
pull.bind(sys.argv[1])
print("ready", flush=True)
while True:
    pull.recv()
"""


@contextlib.contextmanager
def drained() -> Iterator[str]:
    """An ipc endpoint whose PULL another process reads until the block ends."""
    folder = tempfile.mkdtemp(prefix="fsl")
    endpoint = f"ipc://{folder}/in"
    reader = subprocess.Popen([sys.executable, "-c", DRAIN, endpoint], stdout=subprocess.PIPE)
    try:
        assert reader.stdout is not None
        reader.stdout.readline()  # bound
        yield endpoint
    finally:
        reader.kill()
        reader.communicate()  # reaped, its pipe closed
        shutil.rmtree(folder, ignore_errors=True)


def per_message_us(send: Callable[[], None], count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        send()
    return (time.perf_counter() - began) / count * 1e6


KINDS = ("bytes", "arrow", "struct")
STAMP = 1_700_000_000_000_000_000  # a metadata timestamp's size


def value_of(kind: str, size: int) -> Any:
    """One value of `kind` and about `size` bytes, made before the timing (as the bench's
    payload kinds, bench/nodes/common.py)."""
    if kind == "bytes":
        return bytes(size)
    import numpy as np
    import pyarrow as pa

    if kind == "arrow":
        return pa.array(np.zeros(size, dtype=np.uint8))
    rows = max(size // 8, 1)
    fields = [pa.array(np.zeros(rows, dtype=np.uint32)), pa.array(np.ones(rows, dtype=np.uint32))]
    return pa.StructArray.from_arrays(fields, names=["x", "y"])


def measure(
    count: int, size: int, kind: str = "bytes", meta: bool = False
) -> dict[str, list[float]]:
    """Microseconds per message of each side, one figure per round."""
    ctx: zmq.Context[Any] = zmq.Context()
    figures: dict[str, list[float]] = {"flow send_output": [], "raw send_multipart": []}
    payload = value_of(kind, size)
    seqs = itertools.count()
    try:
        with drained() as endpoint:
            edge = {"endpoint": endpoint, "node": "r", "input": "i", "policy": "drop_oldest",
                    "queue_size": count + 10}  # fmt: skip
            cfg = config.from_json({"run": "bench", "node": "s", "generation": 1,
                                    "daemon": "ipc:///nonexistent", "inputs": {},
                                    "outputs": {"out": [edge]}}, "send_loop")  # fmt: skip
            sender = Sender(ctx, cfg, 10.0)
            sender.connect()
            push = ctx.socket(zmq.PUSH)
            push.sndhwm = count + 10
            push.connect(endpoint)
            time.sleep(0.2)  # both connected
            send_output = sender.send_output

            def flow_send() -> None:
                metadata = {"seq": next(seqs), "t": STAMP, "p": 2} if meta else None
                send_output("out", payload, metadata)

            def raw_send() -> None:  # the buffers as they are, as bench/nodes/raw_peer.py
                frames = [payload] if kind == "bytes" else [
                    buffer for buffer in payload.buffers() if buffer is not None]  # fmt: skip
                if meta:
                    head = json.dumps({"seq": next(seqs), "t": STAMP, "p": 2}).encode()
                    frames = [head, *frames]
                push.send_multipart(frames)

            for _ in range(ROUNDS):
                figures["flow send_output"].append(per_message_us(flow_send, count))
                time.sleep(0.2)  # the reader catches up
                figures["raw send_multipart"].append(per_message_us(raw_send, count))
                time.sleep(0.2)
            push.close(linger=0)
            for output in sender.outputs.values():
                for sent in output.edges:
                    sent.sock.close(linger=0)
    finally:
        ctx.term()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_loop", description=__doc__)
    parser.add_argument("--count", type=int, default=100_000, help="messages per round")
    parser.add_argument("--size", type=int, default=8, help="payload bytes")
    parser.add_argument("--kind", choices=KINDS, default="bytes", help="the payload kind")
    parser.add_argument("--meta", action="store_true", help="a small metadata dict with each")
    args = parser.parse_args()
    figures = measure(args.count, args.size, args.kind, args.meta)
    what = "" if args.kind == "bytes" else f" {args.kind}"
    what += " with metadata" if args.meta else ""
    print(f"{args.size} B{what}, {args.count} messages a round, {ROUNDS} rounds alternated")
    print("| side | median us | rounds, us |\n|---|---|---|")
    for name, values in figures.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {shown} |")


if __name__ == "__main__":
    main()
