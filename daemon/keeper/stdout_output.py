"""`send_stdout_as`: the daemon sends each stdout line of a node as a string message.

The daemon owns that output (the node's configuration leaves it out), numbers its messages
with the node's generation like any sender, and ends it with end-of-stream frames when the
node exits. Sends never wait: a full queue (or, for a backpressure input, no credit left)
drops the line, and the receiver sees the gap in sequence numbers.

A node spawned before the run's start barrier may print before its receivers are all
connected (a process node is never held by the barrier): its lines are `held` here, at
most HELD_LINES of them (the oldest dropped, a gap like any other), until `release`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import attrs
import zmq

from node_sdk.frames import encode_data, encode_eos
from node_sdk.wire import unpack_credit

log = logging.getLogger(__name__)

SNDHWM = 1000
HELD_LINES = 1000  # lines kept for receivers not yet connected (as many as one queue holds)


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
    held: deque[list[Any]] | None = None  # lines framed before `release`; None: released
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
        held: bool = False,
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
        return cls(
            source=source,
            generation=generation,
            edges=built,
            restartable=restartable,
            held=deque() if held else None,
        )

    def send_line(self, line: str) -> None:
        self.seq += 1
        frames = encode_data(
            line,
            source=self.source,
            generation=self.generation,
            seq=self.seq,
            timestamp_ns=time.time_ns(),  # when printed, not when released
        )
        if self.held is None:
            self._send(frames)
            return
        if len(self.held) >= HELD_LINES:
            self.held.popleft()  # its number goes with it: the receiver counts a drop
            self.dropped += 1
        self.held.append(frames)

    def release(self) -> None:
        """The receivers are connected: what was held goes out in order, then each line."""
        held, self.held = self.held, None
        for frames in held or ():
            self._send(frames)

    def _send(self, frames: list[Any]) -> None:
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
        # a node that ended before the barrier: its lines still go, ahead of its end
        self.release()
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


@attrs.define(eq=False)
class ParkedOutputs:
    """The held outputs of nodes that ended before their release, by node: closed (their
    lines, then end-of-stream) at that release, or when the keeper ends."""

    by_node: dict[str, list[StdoutOutput]] = attrs.field(factory=dict)

    def park(self, node: str, output: StdoutOutput) -> None:
        self.by_node.setdefault(node, []).append(output)

    def close(self, node: str) -> None:
        for output in self.by_node.pop(node, []):
            output.close()

    def close_all(self) -> None:
        for node in list(self.by_node):
            self.close(node)


def _collect_credits(socket: zmq.Socket[bytes]) -> int:
    """Credit frames the receiver sent back since the last look."""
    total = 0
    while True:
        try:
            total += unpack_credit(socket.recv(zmq.NOBLOCK))
        except zmq.Again:
            return total
