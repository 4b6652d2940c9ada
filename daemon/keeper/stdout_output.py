"""`send_stdout_as`: the daemon sends each stdout line of a node as a string message.

The daemon owns that output (the node's configuration leaves it out), numbers its messages
with the node's generation like any sender, and ends it with end-of-stream frames when the
node exits. Sends never wait: a full queue (or, for a backpressure input, no credit left)
drops the line, and the receiver sees the gap in sequence numbers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs
import zmq

from node_sdk.frames import encode_data, encode_eos
from node_sdk.wire import unpack_credit

log = logging.getLogger(__name__)

SNDHWM = 1000


@attrs.define(eq=False)
class _Edge:
    """One receiving input: a PUSH, or for a backpressure input a DEALER with credits."""

    socket: zmq.Socket[bytes]
    credits: int | None  # None: drop_oldest, no credit accounting


@attrs.define(eq=False)
class StdoutOutput:
    """The sockets of one node's stdout output, one per receiving input."""

    source: str  # "node/output"
    generation: int
    edges: list[_Edge]
    restartable: bool = False  # its node may come back: end-of-stream ends a generation
    seq: int = 0
    dropped: int = 0

    @classmethod
    def open(
        cls,
        context: zmq.Context[zmq.Socket[bytes]],
        source: str,
        generation: int,
        edges: list[dict[str, Any]],
        restartable: bool = False,
    ) -> StdoutOutput:
        built = []
        for edge in edges:
            backpressure = edge.get("policy") == "backpressure"
            # a backpressure input is a ROUTER that pays credits back (node_sdk.wire)
            socket = context.socket(zmq.DEALER if backpressure else zmq.PUSH)
            socket.setsockopt(zmq.LINGER, 500)
            socket.setsockopt(zmq.SNDHWM, SNDHWM)
            socket.connect(edge["endpoint"])
            credits = int(edge.get("queue_size") or 10) if backpressure else None
            built.append(_Edge(socket, credits))
        return cls(source=source, generation=generation, edges=built, restartable=restartable)

    def send_line(self, line: str) -> None:
        self.seq += 1
        frames = encode_data(
            line,
            source=self.source,
            generation=self.generation,
            seq=self.seq,
            timestamp_ns=time.time_ns(),
        )
        for edge in self.edges:
            if edge.credits is not None:
                edge.credits += _collect_credits(edge.socket)
                if edge.credits <= 0:
                    self.dropped += 1  # the keeper never waits on a slow receiver
                    continue
                edge.credits -= 1
            try:
                edge.socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1

    def close(self) -> None:
        frames = encode_eos(
            self.source,
            self.generation,
            self.seq,
            time.time_ns(),
            generation_end=self.restartable,
        )
        for edge in self.edges:
            try:
                edge.socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                log.warning("%s: end-of-stream dropped (receiver queue full)", self.source)
            edge.socket.close()
        self.edges = []


def _collect_credits(socket: zmq.Socket[bytes]) -> int:
    """Credit frames the receiver sent back since the last look."""
    total = 0
    while True:
        try:
            total += unpack_credit(socket.recv(zmq.NOBLOCK))
        except zmq.Again:
            return total
