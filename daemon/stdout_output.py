"""`send_stdout_as`: the daemon sends each stdout line of a node as a string message.

The daemon owns that output (the node's configuration leaves it out), numbers its messages
with the node's generation like any sender, and ends it with end-of-stream frames when the
node exits. Sends never wait: a full queue drops the line (drop_oldest semantics at the
sender) and the receiver sees the gap in sequence numbers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs
import zmq

from node_sdk.wire import encode_data, encode_eos

log = logging.getLogger(__name__)

SNDHWM = 1000


@attrs.define(eq=False)
class StdoutOutput:
    """The PUSH sockets of one node's stdout output, one per receiving input."""

    source: str  # "node/output"
    generation: int
    sockets: list[zmq.Socket[bytes]]
    seq: int = 0
    dropped: int = 0

    @classmethod
    def open(
        cls,
        context: zmq.Context[zmq.Socket[bytes]],
        source: str,
        generation: int,
        edges: list[dict[str, Any]],
    ) -> StdoutOutput:
        sockets = []
        for edge in edges:
            socket = context.socket(zmq.PUSH)
            socket.setsockopt(zmq.LINGER, 500)
            socket.setsockopt(zmq.SNDHWM, SNDHWM)
            socket.connect(edge["endpoint"])
            sockets.append(socket)
        return cls(source=source, generation=generation, sockets=sockets)

    def send_line(self, line: str) -> None:
        self.seq += 1
        frames = encode_data(
            line,
            source=self.source,
            generation=self.generation,
            seq=self.seq,
            timestamp_ns=time.time_ns(),
        )
        for socket in self.sockets:
            try:
                socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1

    def close(self) -> None:
        frames = encode_eos(self.source, self.generation, self.seq, time.time_ns())
        for socket in self.sockets:
            try:
                socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                log.warning("%s: end-of-stream dropped (receiver queue full)", self.source)
            socket.close()
        self.sockets = []
