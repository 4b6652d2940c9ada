"""`flow topic list|echo|hz`: look at the messages of a running dataflow as they flow."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import time
from collections import deque
from typing import Any

RENEW_S = 1.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "topic",
        help="list, print or time the outputs of a running dataflow",
        description="Look at the messages of a live run as they flow: list its outputs, "
        "print the messages of one, or measure its rate.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = _verb(verbs, "list", "every output of a run with its receivers")
    listing.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    echo = _verb(verbs, "echo", "print messages of NODE/OUTPUT as they flow")
    hz = _verb(verbs, "hz", "rate and intervals of NODE/OUTPUT")
    for verb in (echo, hz):
        verb.add_argument("run", metavar="RUN", help="run id, id prefix or name")
        verb.add_argument("topic", metavar="NODE/OUTPUT", help="the output to observe")
        verb.add_argument("--count", type=int, default=0, help="stop after N messages (echo)")
    hz.add_argument("--window", type=float, default=5.0, help="seconds averaged over")
    hz.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.requests import TopicList

    if args.verb == "list":
        reply = client.call(TopicList(run=args.run))
        rows: list[tuple[list[render.Cell], list[render.Cell]]] = []
        for topic in reply.topics:
            rate = topic.rate
            rows.append(
                (
                    [topic.topic, ", ".join(topic.receivers) or "-",
                     "-" if rate is None else f"{rate:.1f}"],
                    [],
                )
            )  # fmt: skip
        render.table(["TOPIC", "RECEIVERS", "RATE/S"], rows)
        return 0
    with Observer(args.run, args.topic) as observer:
        if args.verb == "echo":
            return echo(observer, args.count)
        return hertz(observer, args.window, args.duration, args.count)


class Observer:
    """A drop_oldest receiver of one topic, held by a lease the daemon must see renewed."""

    def __init__(self, run: str, topic: str) -> None:
        import zmq

        from cli import client
        from daemon.model.requests import TopicSubscribe
        from node_sdk import paths
        from node_sdk.leases import Releases, ShmReader

        home = client.home_path()
        client.check_socket_folder(home)  # never bind in a folder another user made
        self.endpoint = paths.observer_endpoint(
            paths.socket_dir(home), os.getpid(), secrets.token_hex(3)
        )
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 100)
        self.socket.bind(self.endpoint)
        self.run, self.topic = run, topic
        self.shm = ShmReader(Releases())  # payloads senders put in shared memory
        try:
            reply = client.call(TopicSubscribe(run=run, topic=topic, endpoint=self.endpoint))
        except BaseException:
            self._close()
            raise
        self.lease = reply.lease
        self.renewed = time.monotonic()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        from cli import client
        from cli.errors import CliError
        from daemon.model.requests import TopicUnsubscribe

        with contextlib.suppress(CliError):  # if not, the lease expires by itself
            client.call(TopicUnsubscribe(lease=self.lease), timeout=2.0)
        self._close()

    def _close(self) -> None:
        from pathlib import Path

        self.shm.releases.close()
        self.context.destroy(linger=0)
        # the socket file of a bound ipc endpoint is ours to remove
        Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)

    def next(self, timeout: float) -> Any | None:
        """The next decoded message, or None after `timeout` seconds."""
        from cli import client
        from daemon.model.requests import TopicRenew
        from node_sdk.frames import decode_data

        if time.monotonic() - self.renewed > RENEW_S:
            client.call(TopicRenew(lease=self.lease), timeout=2.0)
            self.renewed = time.monotonic()
        self.shm.releases.flush()  # the previous message's segment goes back to its sender
        if not self.socket.poll(int(timeout * 1000)):
            return None
        frames = self.socket.recv_multipart()
        try:
            return decode_data(frames, self.shm.open_payload)
        except Exception as exc:  # a kind this observer cannot map: say so, go on
            return f"<undecodable message: {exc}>"


def describe(value: Any) -> str:
    """A one-line, bounded rendering of a payload of any kind."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return repr(value if len(value) <= 200 else value[:200] + "...")
    if isinstance(value, memoryview | bytes | bytearray):
        data = bytes(value[:32])
        return f"<{len(value)} bytes> {data.hex()}{'...' if len(value) > 32 else ''}"
    module = type(value).__module__
    if module.startswith("numpy"):
        return f"<ndarray {value.dtype} {tuple(value.shape)}> {value.ravel()[:8]!s}"
    if module.startswith("pyarrow"):
        preview = value.slice(0, 5).to_pylist()
        return f"<{value.type} x{len(value)}> {preview}"
    return repr(value)[:200]


def echo(observer: Observer, count: int) -> int:
    from cli import render

    seen = 0
    while count <= 0 or seen < count:
        message = observer.next(0.5)
        if message is None:
            continue
        if isinstance(message, str):
            render.warning(message)
            continue
        seen += 1
        meta = {k: v for k, v in message.metadata.items() if k != "timestamp"}
        extra = f" {meta}" if meta else ""
        render.info(f"seq {message.header.seq}: {describe(message.value)}{extra}")
    return 0


def hertz(observer: Observer, window: float, duration: float, count: int) -> int:
    from cli import render

    stamps: deque[float] = deque()
    started = last_print = time.monotonic()
    printed = 0
    while True:
        message = observer.next(0.2)
        now = time.monotonic()
        if message is not None:
            stamps.append(now)
        while stamps and now - stamps[0] > window:
            stamps.popleft()
        if now - last_print >= 1.0:
            last_print = now
            printed += 1
            if len(stamps) >= 2:
                gaps = [b - a for a, b in zip(stamps, list(stamps)[1:], strict=False)]
                rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
                render.info(
                    f"rate {rate:.2f}/s  min {min(gaps) * 1000:.1f} ms  "
                    f"max {max(gaps) * 1000:.1f} ms  window {len(stamps)} msgs"
                )
            else:
                render.info("no messages")
        if (duration and now - started >= duration) or (count and printed >= count):
            return 0


def _verb(verbs: Any, name: str, text: str) -> Any:
    """A sub-verb whose description is its help as a sentence."""
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
