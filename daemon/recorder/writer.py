"""The recorder's writing side: a bounded drop-oldest queue and the thread that empties it
into the MCAP file, counting per topic what was recorded and what was not.

The queue is the recorder's own inbox (SPEC 7.3): a slow disk makes it drop its oldest
messages (counted), never makes the reader thread wait, so the senders' drop_oldest edges
to the recorder never fill because of the disk. A write that fails (a full disk) ends the
file: every message after it is counted as missed, and the cause is kept for the summary.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Final

from daemon.model import recording as fmt

QUEUE_MESSAGES: Final = 256
QUEUE_BYTES: Final = 64 << 20  # a recorder holds at most this much payload in memory


@dataclass(slots=True)
class Received:
    """One data message off a socket, its payload copied out of any shared memory."""

    topic: str
    kind: int
    payload: bytes
    extra: Mapping[str, Any]
    seq: int
    generation: int
    stamp_ns: int
    metadata: Mapping[str, Any]


@dataclass(slots=True)
class Tally:
    """What happened to the messages of one topic."""

    recorded: int = 0
    missed: int = 0  # sent while recording but not in the file (any cause)


@dataclass
class Tallies:
    """Per-topic counts, written by both threads under one lock."""

    topics: dict[str, Tally] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def missed(self, topic: str, count: int) -> None:
        if count > 0:
            with self.lock:
                self.topics[topic].missed += count

    def recorded(self, topic: str) -> None:
        with self.lock:
            self.topics[topic].recorded += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {t: {"recorded": c.recorded, "missed": c.missed} for t, c in self.topics.items()}


class McapSink:
    """The MCAP file: channels, messages, the dataflow attachment; `finish` closes it."""

    def __init__(self, path: str, topics: list[str], run: Mapping[str, str], dataflow: str) -> None:
        from mcap.writer import CompressionType, Writer

        # never another user's to read, never an existing file overwritten
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        # uncompressed: base64 payloads compress, but the CPU is better left to the nodes
        self.writer = Writer(self.file, compression=CompressionType.NONE)
        self.writer.start(profile=fmt.PROFILE, library="flow")
        schema = self.writer.register_schema(
            name=fmt.SCHEMA_NAME, encoding="jsonschema", data=fmt.schema_bytes()
        )
        self.channels = {
            topic: self.writer.register_channel(
                topic=topic, message_encoding=fmt.MESSAGE_ENCODING, schema_id=schema
            )
            for topic in topics
        }
        now = time.time_ns()
        self.writer.add_attachment(now, now, fmt.DATAFLOW_ATTACHMENT, "application/yaml",
                                   dataflow.encode())  # fmt: skip
        self.writer.add_metadata(fmt.RUN_METADATA, dict(run))
        self.file.flush()

    def write(self, message: Received) -> None:
        data = fmt.encode_message(
            message.kind, message.payload, message.extra, seq=message.seq,
            generation=message.generation, metadata=message.metadata,
        )  # fmt: skip
        stamp = message.stamp_ns or time.time_ns()
        self.writer.add_message(self.channels[message.topic], stamp, data, stamp,
                                message.seq & 0xFFFFFFFF)  # fmt: skip

    def finish(self, tally: Mapping[str, Mapping[str, int]]) -> None:
        self.writer.add_metadata(fmt.TALLY_METADATA, fmt.tally_text(tally))
        self.writer.finish()  # type: ignore[no-untyped-call]  # mcap leaves it untyped
        self.file.close()

    def abandon(self) -> None:
        """Close the file as it is (after a failed write: it cannot be finished)."""
        with contextlib.suppress(OSError):  # the cause is the first failure, already kept
            self.file.close()


class WriterThread(threading.Thread):
    """Empties the queue into the sink; the reader thread only appends (drop-oldest)."""

    def __init__(self, sink: McapSink | None, tallies: Tallies, error: str | None) -> None:
        super().__init__(name="flow-recorder-writer", daemon=True)
        self.sink = sink
        self.tallies = tallies
        self.error = error  # the first failure: nothing is written after it
        self.queue: deque[Received] = deque()
        self.queued_bytes = 0
        self.cond = threading.Condition()
        self.closing = False

    def put(self, message: Received) -> None:
        """Queue one message; the oldest go (counted) when the queue is over its bounds."""
        with self.cond:
            self.queue.append(message)
            self.queued_bytes += len(message.payload)
            while len(self.queue) > QUEUE_MESSAGES or (
                self.queued_bytes > QUEUE_BYTES and len(self.queue) > 1
            ):
                old = self.queue.popleft()
                self.queued_bytes -= len(old.payload)
                self.tallies.missed(old.topic, 1)
            self.cond.notify()

    def close(self) -> None:
        """Write what is queued, then finish the file (`join` waits for it)."""
        with self.cond:
            self.closing = True
            self.cond.notify()

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closing:
                    self.cond.wait()
                if not self.queue:
                    break
                message = self.queue.popleft()
                self.queued_bytes -= len(message.payload)
            self._write(message)
        self._finish()

    def _write(self, message: Received) -> None:
        if self.sink is None or self.error is not None:
            self.tallies.missed(message.topic, 1)
            return
        try:
            self.sink.write(message)
        except OSError as exc:  # a full disk: the file cannot go on
            self.error = _cause(exc)
            self.tallies.missed(message.topic, 1)
            return
        except ValueError:  # a payload the format cannot hold: only this one is missed
            self.tallies.missed(message.topic, 1)
            return
        self.tallies.recorded(message.topic)

    def _finish(self) -> None:
        if self.sink is None:
            return
        if self.error is not None:
            self.sink.abandon()
            return
        try:
            self.sink.finish(self.tallies.as_dict())
        except OSError as exc:
            self.error = f"{_cause(exc)} (while closing the file: it is incomplete)"
            self.sink.abandon()


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
