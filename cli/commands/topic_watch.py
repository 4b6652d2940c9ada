"""`flow topic echo|hz`: an observer of one output, what it prints, and how it times it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import itertools
import json
import math
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from daemon.model.recording_floats import spelled

RENEW_S = 1.0
JSON_ITEMS = 1024  # arrays up to this many elements are given whole in --json, else a preview
PREVIEW_BYTES = 32


@dataclass(frozen=True, slots=True)
class Cut:
    """A payload its machine did not relay (too large, or in shared memory there; see
    docs/cluster.md): what it was and how large."""

    kind: int
    size: int
    extra: dict[str, Any]

    @property
    def type_name(self) -> str:
        from node_sdk import wire

        names = {wire.KIND_NONE: "none", wire.KIND_BYTES: "bytes", wire.KIND_STR: "str",
                 wire.KIND_NUMPY: "ndarray", wire.KIND_ARROW: "arrow"}  # fmt: skip
        return names.get(self.kind, f"kind {self.kind}")


class RunEnded(Exception):
    """The observed run has ended: its observers' leases ended with it."""


class Observer:
    """A drop_oldest receiver of one topic, held by a lease the daemon must see renewed."""

    def __init__(self, run: str, topic: str) -> None:
        import zmq

        from cli import client
        from cli.errors import CliError, DaemonUnreachable
        from daemon.model.requests_watch import TopicSubscribe
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
        try:
            self.socket.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self.context.destroy(linger=0)
            if exc.errno == errno.ENOENT:  # no socket folder: no daemon made it (or it is gone)
                raise DaemonUnreachable(paths.control_endpoint(home)) from None
            # a full file table, a folder made unwritable...: said as it is
            raise CliError(f"cannot listen on {self.endpoint} for the topic: {exc}") from None
        self.run, self.topic = run, topic
        self.shm = ShmReader(Releases())  # payloads senders put in shared memory
        # what was sent before this observer was wired is not what it observes
        self.since_ns = time.time_ns()
        try:
            reply = client.call(TopicSubscribe(run=run, topic=topic, endpoint=self.endpoint))
        except BaseException:
            self._close()
            raise
        self.lease, self.run_id = reply.lease, reply.run or run  # "": an older daemon
        self.renewed = time.monotonic()
        self.relay_dropped = 0  # samples a node's machine could not relay (docs/cluster.md)

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        from cli import client
        from cli.errors import CliError
        from daemon.model.requests_watch import TopicUnsubscribe

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
        """The next decoded message (a DataMessage, or a str saying why it could not be
        decoded), or None after `timeout` seconds."""
        from cli import client
        from cli.errors import CliError
        from daemon.model.requests_base import Seconds
        from daemon.model.requests_runs import Wait
        from daemon.model.requests_watch import TopicRenew
        from node_sdk.frames import decode_data

        if time.monotonic() - self.renewed > RENEW_S:
            try:
                client.call(TopicRenew(lease=self.lease), timeout=2.0)
            except CliError:
                ended = client.call(Wait(run=self.run_id, timeout=Seconds(0.0))).run
                if ended.get("status") not in ("starting", "running"):
                    raise RunEnded(f"run {self.run} ended") from None
                raise
            self.renewed = time.monotonic()
        self.shm.releases.flush()  # the previous message's segment goes back to its sender
        self.shm.sweep()  # the ones senders removed are unmapped
        if not self.socket.poll(int(timeout * 1000)):
            return None
        frames = self.socket.recv_multipart()
        try:
            return self._relayed(frames) or decode_data(frames, self.shm.open_payload)
        except Exception as exc:  # a kind this observer cannot map: say so, go on
            return f"<undecodable message: {exc}>"

    def _relayed(self, frames: list[bytes]) -> Any | None:
        """What a node's machine relayed (its node on another machine) says beyond the
        message: samples it dropped (a line), a payload it did not send (a `Cut`)."""
        from cli import render
        from node_sdk.frames import DataMessage
        from node_sdk.wire import unpack_header

        header = unpack_header(frames[0])
        dropped = header.extra.get("rd")
        if type(dropped) is int and dropped > self.relay_dropped:
            render.warning(f"{dropped - self.relay_dropped} messages of {self.topic} were not "
                           "relayed from its machine (the relay is bounded: docs/cluster.md)")
            self.relay_dropped = dropped
        size = header.extra.get("cut")
        if type(size) is not int:
            return None
        metadata = dict(header.extra.get("m") or {})
        return DataMessage(header, header.extra.get("s"), metadata,
                           Cut(header.kind, size, dict(header.extra)))  # fmt: skip


def describe(value: Any) -> str:
    """A one-line, bounded rendering of a payload of any kind."""
    if value is None:
        return "None"
    if isinstance(value, Cut):
        shape = f" {value.extra.get('dt')} {tuple(value.extra.get('sh') or ())}" if (
            "dt" in value.extra) else ""  # fmt: skip
        return f"<{value.type_name}{shape}, {value.size} bytes: not relayed from its machine>"
    if isinstance(value, str):
        return repr(value if len(value) <= 200 else value[:200] + "...")
    if isinstance(value, memoryview | bytes | bytearray):
        data = bytes(value[:PREVIEW_BYTES])
        return f"<{len(value)} bytes> {data.hex()}{'...' if len(value) > PREVIEW_BYTES else ''}"
    module = type(value).__module__
    if module.startswith("numpy"):
        return f"<ndarray {value.dtype} {tuple(value.shape)}> {value.ravel()[:8]!s}"
    if module.startswith("pyarrow"):
        preview = value.slice(0, 5).to_pylist()
        return f"<{value.type} x{len(value)}> {preview}"
    return repr(value)[:200]


def encoding(value: Any) -> dict[str, Any]:
    """What a payload is: `type` (none, str, bytes, ndarray, arrow), `size` in bytes, and
    `dtype`/`shape` or arrow `arrow_type`/`length`."""
    if value is None:
        return {"type": "none", "size": 0}
    if isinstance(value, Cut):  # relayed from another machine without its payload
        facts = {"type": value.type_name, "size": value.size, "relayed": False}
        if "dt" in value.extra:
            facts.update(dtype=str(value.extra["dt"]), shape=value.extra.get("sh"))
        return facts
    if isinstance(value, str):
        return {"type": "str", "size": len(value.encode())}
    if isinstance(value, memoryview | bytes | bytearray):
        return {"type": "bytes", "size": len(value)}
    module = type(value).__module__
    if module.startswith("numpy"):
        return {"type": "ndarray", "size": int(value.nbytes), "dtype": str(value.dtype),
                "shape": list(value.shape)}  # fmt: skip
    if module.startswith("pyarrow"):
        return {"type": "arrow", "size": int(value.nbytes), "arrow_type": str(value.type),
                "length": len(value)}  # fmt: skip
    return {"type": type(value).__name__, "size": 0}


def json_value(value: Any) -> Any:
    """The payload as JSON: whole when it is text or a small array, else a bounded preview
    (bytes as hex of the first PREVIEW_BYTES)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Cut):
        return None
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value[:PREVIEW_BYTES]).hex()
    module = type(value).__module__
    if module.startswith("numpy"):
        return value.ravel()[:JSON_ITEMS].tolist() if value.size > JSON_ITEMS else value.tolist()
    if module.startswith("pyarrow"):
        return value.slice(0, JSON_ITEMS).to_pylist()
    return repr(value)[:200]


def _clock(stamp_ns: int) -> str:
    """The local wall-clock time of a message, to the millisecond."""
    return dt.datetime.fromtimestamp(stamp_ns / 1e9).strftime("%H:%M:%S.%f")[:-3]


class Skipped:
    """Messages the observer's bounded queue dropped while echo fell behind, read from gaps
    in each generation's sequence numbers; said at most once a second (and at the end), so
    that a sender outrunning the terminal does not double what is printed."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.last: tuple[int, int] | None = None  # (generation, seq) of the last one seen
        self.pending = 0
        self.said_at = 0.0

    def see(self, generation: int, seq: int) -> None:
        """Count the gap before the message numbered `seq` of `generation`."""
        if self.last is not None and self.last[0] == generation and seq > self.last[1] + 1:
            self.pending += seq - self.last[1] - 1
        self.last = (generation, seq)
        if self.pending and time.monotonic() - self.said_at >= 1.0:
            self.say()

    def say(self) -> None:
        from cli import render

        if self.pending:
            render.warning(f"{self.pending} messages of {self.topic} skipped: echo fell "
                           "behind and its queue keeps only the newest")  # fmt: skip
            self.pending, self.said_at = 0, time.monotonic()


def echo(observer: Observer, count: int, as_json: bool) -> int:
    skipped = Skipped(observer.topic)
    try:
        return _echo(observer, count, as_json, skipped)
    finally:
        skipped.say()


def _echo(observer: Observer, count: int, as_json: bool, skipped: Skipped) -> int:
    from cli import render
    from node_sdk.wire import KIND_EOS

    seen = 0
    while count <= 0 or seen < count:
        message = observer.next(0.5)
        if message is None:
            continue
        if isinstance(message, str):
            render.warning(message)
            continue
        header = message.header
        # an end-of-stream carries the last seq sent: what follows it is what it ends
        skipped.see(header.generation, header.seq + (header.kind == KIND_EOS))
        stamp = header.timestamp_ns or time.time_ns()  # 0: a sender that did not stamp it
        meta = {k: v for k, v in message.metadata.items() if k != "timestamp"}
        if header.kind == KIND_EOS:
            if as_json:
                _json_line({"topic": observer.topic, "end_of_stream": True,
                            "generation": header.generation, "last_seq": header.seq})  # fmt: skip
            else:
                render.info(f"{_clock(stamp)} end of stream (generation {header.generation})")
            continue
        seen += 1
        if as_json:
            _json_line(
                {
                    "topic": observer.topic,
                    "time": dt.datetime.fromtimestamp(stamp / 1e9).astimezone().isoformat(),
                    "timestamp_ns": stamp,
                    "seq": header.seq,
                    "generation": header.generation,
                    "metadata": meta,
                    **encoding(message.value),
                    "value": json_value(message.value),
                }
            )
        else:
            extra = f" {meta}" if meta else ""
            render.info(f"{_clock(stamp)} seq {header.seq}: {describe(message.value)}{extra}")
    return 0


def _json_line(record: dict[str, Any]) -> None:
    from cli import render

    try:  # metadata values are JSON already; `default` to be safe
        text = json.dumps(record, default=str, allow_nan=False)
    except ValueError:  # a NaN or an infinity: a bare token no reader but Python's takes
        text = json.dumps(_spelled(record), default=str, allow_nan=False)
    render.out.print(text, markup=False, highlight=False, soft_wrap=True)


def _spelled(value: Any) -> Any:
    """`value` with each NaN and infinity spelled as a recording spells it, through dicts
    and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return spelled(value)
    if isinstance(value, dict):
        return {key: _spelled(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_spelled(item) for item in value]
    return value


class RateWindow:
    """Message rate over the last `window_s` seconds, from the senders' own timestamps: a
    burst in delivery (a busy observer, shared memory handed over in batches) does not
    change it, and a message sent before the observer was wired is not counted."""

    def __init__(self, window_s: float, since_ns: int) -> None:
        self.window_ns = int(window_s * 1e9)
        self.since_ns = since_ns
        self.stamps: deque[int] = deque()
        self.first_ns = self.last_ns = 0
        self.total = 0

    def add(self, stamp_ns: int) -> bool:
        """Count one message sent at `stamp_ns`; False if it predates the observer."""
        if stamp_ns < self.since_ns:
            return False
        if not self.total:
            self.first_ns = stamp_ns
        self.total += 1
        self.last_ns = stamp_ns
        self.stamps.append(stamp_ns)
        return True

    def trim(self, now_ns: int) -> None:
        """Forget what was sent more than a window before `now_ns`."""
        while self.stamps and self.stamps[0] < now_ns - self.window_ns:
            self.stamps.popleft()

    def summary(self) -> str | None:
        """`rate`, gaps and count of the window, or None under two messages."""
        stamps = list(self.stamps)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return None
        gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
        rate = (len(stamps) - 1) * 1e9 / (stamps[-1] - stamps[0])
        return (
            f"rate {rate:.2f}/s  min {min(gaps):.1f} ms  max {max(gaps):.1f} ms  "
            f"window {len(stamps)} msgs"
        )

    def overall(self) -> str:
        """The final account: every message counted, over the span they were sent in."""
        span_s = (self.last_ns - self.first_ns) / 1e9
        if self.total < 2 or span_s <= 0:
            return f"{self.total} messages: too few to time"
        rate = (self.total - 1) / span_s
        return f"{self.total} messages in {span_s:.2f} s: rate {rate:.2f}/s"


def hertz(observer: Observer, window: float, duration: float, count: int) -> int:
    """A line a second until `duration` seconds or `count` messages, then the overall rate."""
    from cli import render
    from node_sdk.wire import KIND_EOS

    rates = RateWindow(window, observer.since_ns)
    started = last_print = time.monotonic()
    while True:
        message = observer.next(0.2)
        now = time.monotonic()
        if message is not None and not isinstance(message, str) and message.header.kind != KIND_EOS:
            rates.add(message.header.timestamp_ns or time.time_ns())
        if count and rates.total >= count:
            render.info(rates.overall())
            return 0
        if now - last_print >= 1.0:
            last_print = now
            rates.trim(time.time_ns())
            render.info(rates.summary() or "no messages")
        if duration and now - started >= duration:
            render.info(rates.overall())
            return 0
