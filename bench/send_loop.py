"""`python -m bench.send_loop`: what one small message costs flow's sender in a loop, against
raw pyzmq's `send_multipart` on the same kind of socket, both to a PULL another process drains
(docs/performance.md, "A small message's send")."""

from __future__ import annotations

import argparse
import contextlib
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


def measure(count: int, size: int) -> dict[str, list[float]]:
    """Microseconds per message of each side, one figure per round."""
    ctx: zmq.Context[Any] = zmq.Context()
    figures: dict[str, list[float]] = {"flow send_output": [], "raw send_multipart": []}
    payload = bytes(size)
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
            for _ in range(ROUNDS):
                figures["flow send_output"].append(
                    per_message_us(lambda: send_output("out", payload), count))
                time.sleep(0.2)  # the reader catches up
                figures["raw send_multipart"].append(
                    per_message_us(lambda: push.send_multipart([payload]), count))
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
    args = parser.parse_args()
    figures = measure(args.count, args.size)
    print(f"{args.size} B, {args.count} messages a round, {ROUNDS} rounds alternated")
    print("| side | median us | rounds, us |\n|---|---|---|")
    for name, values in figures.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {shown} |")


if __name__ == "__main__":
    main()
