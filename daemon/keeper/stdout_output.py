"""`send_stdout_as`: the daemon sends each stdout line of a node as a string message.

The daemon owns that output (the node's configuration leaves it out), numbers its messages
with the node's generation like any sender, and ends it with end-of-stream frames when the
node exits. Sends never wait: a full queue (or, for a backpressure input, no credit left)
drops the line, and the receiver sees the gap in sequence numbers.

A node spawned before the run's start barrier may print before its receivers are all
connected (a process node is never held by the barrier): its lines are `held` here, at
most HELD_LINES of them (the oldest dropped, a gap like any other), until `release`. A
held node that ends has its end-of-stream queued behind its lines.

A generation's sockets stay open after it ended: its node's next generation goes on from
them, so that the receivers get every generation in order (a second set of sockets would
race the first, which may still be reconnecting to a receiver that was not bound yet, or
delivering its end-of-stream). They are closed with the keeper, once what they queued is
delivered (within END_BOUND_S; node_sdk.flush, as an SDK node's edges end).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import zmq

from daemon.keeper.stdout_counts import SentCounts
from daemon.keeper.stdout_edges import StdoutEdge, collect_credits, connect, machine_curve
from daemon.model.keeper_messages import (
    MAX_COUNTED,
    StdoutAs,
    StdoutKeys,
    StdoutStats,
    UnwireStdout,
    WireStdout,
    converter,
)
from daemon.model.logformat import LogRecord, log_entry_json
from node_sdk.config import is_tcp
from node_sdk.flush import EVERY_RECEIVER, Ending
from node_sdk.frames import encode_data, encode_eos, payload_bytes

log = logging.getLogger(__name__)

HELD_LINES = 1000  # lines kept for receivers not yet connected (as many as one queue holds)
# at the keeper's end, how long a receiver that is there is given to take what was sent
END_BOUND_S = 2.0
LINGERING_END_S = 0.5  # what the keeper's context's end is given then (a fixed linger's)


@attrs.define(eq=False)
class StdoutOutput:
    """The sockets of one node's stdout output, one per receiving input."""

    source: str  # "node/output"
    generation: int
    edges: list[StdoutEdge]
    restartable: bool = False  # its node may come back: end-of-stream ends a generation
    # frames made before `release`, as (end-of-stream: never dropped, generation, line,
    # frames); None: released
    held: deque[tuple[bool, int, int, list[Any]]] | None = None
    seq: int = 0
    counts: SentCounts = attrs.field(factory=SentCounts)  # this generation's (stdout_counts)

    @classmethod
    def open(
        cls,
        context: zmq.Context[zmq.Socket[bytes]],
        source: str,
        generation: int,
        edges: list[dict[str, Any]],
        restartable: bool = False,
        held: bool = False,
        keys: StdoutKeys | None = None,
    ) -> StdoutOutput:
        curve = machine_curve(source, keys) if keys is not None else None
        built = [e for e in (connect(context, source, edge, curve) for edge in edges) if e]
        return cls(
            source=source,
            generation=generation,
            edges=built,
            restartable=restartable,
            held=deque() if held else None,
        )

    def endpoints(self) -> list[str]:
        return [edge.endpoint for edge in self.edges]

    def wire(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        edge: dict[str, Any],
        keys: StdoutKeys | None,
    ) -> None:
        """One more receiver, from the next line on (the lines before it are not sent again:
        an observer or a recorder wired to a running node starts from what it says next)."""
        if edge["endpoint"] in self.endpoints():
            return  # wired already: by the spawn, which carries the run's live edges
        tcp = keys is not None and is_tcp(edge["endpoint"])
        curve = machine_curve(self.source, keys) if keys is not None and tcp else None
        added = connect(context, self.source, edge, curve)
        if added is not None:
            added.before[self.generation] = self.seq
            self.edges.append(added)

    def unwire(self, endpoint: str) -> None:
        """That receiver is gone: its socket closed, what it did not read dropped with it."""
        for edge in [e for e in self.edges if e.endpoint == endpoint]:
            self.edges.remove(edge)
            edge.socket.close(linger=0)

    def next_generation(self, generation: int, held: bool) -> StdoutOutput:
        """The output of the node's next generation, from this ended one's sockets (and
        queue, if still held); this one is left with neither."""
        if not held:
            self.release()
        queue = self.held if self.held is not None else deque()
        following = StdoutOutput(
            self.source, generation, self.edges, self.restartable, queue if held else None
        )
        self.edges, self.held = [], None
        return following

    def send_line(self, line: object) -> None:
        """Send one message: a stdout line (str) or a log entry (see `log_entry_value`)."""
        self.seq += 1
        frames = encode_data(
            line,
            source=self.source,
            generation=self.generation,
            seq=self.seq,
            timestamp_ns=time.time_ns(),  # when printed, not when released
        )
        if self.held is None:
            self._send(self.generation, self.seq, frames)
            return
        if sum(not entry[0] for entry in self.held) >= HELD_LINES:
            self._drop_oldest_line(self.held)
        self.held.append((False, self.generation, self.seq, frames))

    def _drop_oldest_line(self, held: deque[tuple[bool, int, int, list[Any]]]) -> None:
        for index, (eos, generation, line, _) in enumerate(held):
            if not eos:
                del held[index]  # its number goes with it: the receiver counts a drop
                # once per receiver that would have had it, as `_send` counts
                self.counts.dropped += sum(
                    line > edge.before.get(generation, 0) for edge in self.edges
                )
                return

    def release(self) -> None:
        """The receivers are connected: what was held goes out in order, then each line."""
        held, self.held = self.held, None
        for eos, generation, line, frames in held or ():
            if eos:
                self._send_eos(generation, line, frames)
            else:
                self._send(generation, line, frames)

    def end(self) -> None:
        """The generation ended: its end-of-stream, after what is held."""
        frames = encode_eos(
            self.source,
            self.generation,
            self.seq,
            time.time_ns(),
            generation_end=self.restartable,
        )
        if self.held is not None:
            self.held.append((True, self.generation, self.seq, frames))
        else:
            self._send_eos(self.generation, self.seq, frames)

    def _send(self, generation: int, line: int, frames: list[Any]) -> None:
        """One line to every receiver; counted sent once if it went out, however many it
        went to (as an SDK node counts a message), and dropped once per edge that missed it."""
        went = False
        for edge in self.edges:
            if line <= edge.before.get(generation, 0):
                continue  # printed before it was wired
            if edge.credits is not None:
                edge.credits += collect_credits(edge.socket)
                if edge.credits <= 0:
                    self.counts.dropped += 1  # the keeper never waits on a slow receiver
                    continue
                edge.credits -= 1
            try:
                edge.socket.send_multipart(edge.numbered(generation, line, frames), zmq.NOBLOCK)
            except zmq.Again:
                self.counts.dropped += 1
            else:
                went = True
        if went:
            self.counts.sent += 1
            self.counts.bytes += payload_bytes(frames)  # of the messages `sent` counts

    def _send_eos(self, generation: int, last: int, frames: list[Any]) -> None:
        for edge in self.edges:
            try:
                edge.socket.send_multipart(edge.numbered(generation, last, frames), zmq.NOBLOCK)
            except zmq.Again:
                log.warning("%s: end-of-stream dropped (receiver queue full)", self.source)

    def close(self) -> None:
        """Send what is still held, then close the sockets (each lingers to deliver)."""
        self.release()
        for edge in self.edges:
            edge.socket.close()
        self.edges = []


@attrs.define(eq=False)
class EndedOutputs:
    """The outputs of ended generations, by node (its latest): released with their node,
    taken over by its next generation (same receivers), closed at the keeper's end."""

    by_node: dict[str, StdoutOutput] = attrs.field(factory=dict)
    # set by `close_all`: a receiver went down while its lines waited, and its socket still
    # lingers (up to END_BOUND_S): the context's end need not wait it out (`end_context`)
    lingering: bool = False

    def keep(self, node: str, output: StdoutOutput) -> None:
        output.end()
        self.by_node[node] = output

    def release(self, node: str, live: StdoutOutput | None) -> None:
        """Past the start barrier: the held lines of the node's running generation (`live`)
        go out, and an ended one's, end included."""
        for output in (self.by_node.get(node), live):
            if output is not None:
                output.release()

    def rewire(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        live: StdoutOutput | None,
        message: WireStdout | UnwireStdout,
    ) -> None:
        """A receiver wired to or unwired from the node's lines while the run goes on: on its
        running generation's output (`live`), else on its ended one's, which its next
        generation takes over. A node not spawned yet gets it with its spawn."""
        output = live if live is not None else self.by_node.get(message.node)
        if output is None:
            return
        if isinstance(message, WireStdout):
            output.wire(context, converter.unstructure(message.edge), message.tcp)
        else:
            output.unwire(message.endpoint)

    def output_for(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        node: str,
        generation: int,
        stdout_as: StdoutAs | None,
    ) -> StdoutOutput | None:
        """The output of a generation being spawned: on its last generation's sockets when
        it feeds the same inputs, else on new ones."""
        ended = self.by_node.pop(node, None)
        endpoints = [edge.endpoint for edge in stdout_as.edges] if stdout_as else []
        # the same receivers, whatever their order (a live edge wired to the ended one is
        # among the spawn's, which carries the run's live edges)
        if ended is not None and stdout_as is not None and sorted(ended.endpoints()) == sorted(
            endpoints
        ):
            return ended.next_generation(generation, stdout_as.held)
        if ended is not None:
            ended.close()
        if stdout_as is None:
            return None
        edges = [converter.unstructure(edge) for edge in stdout_as.edges]
        return StdoutOutput.open(context, stdout_as.source, generation, edges,
                                 stdout_as.restartable, stdout_as.held, stdout_as.tcp)  # fmt: skip

    def stats(self, live: Iterable[StdoutOutput], every: bool = False) -> list[StdoutStats]:
        """The reports of what changed on the running generations' outputs (`live`) and the
        ended ones' (whose held lines may go out after their end), at most MAX_COUNTED
        outputs each; `every`: of all of them (a daemon that attaches knows none)."""
        outputs = (*live, *self.by_node.values())
        due = [o.counts.report(o.source, o.generation)
               for o in outputs if o.counts.due() or every]  # fmt: skip
        chunks = range(0, len(due), MAX_COUNTED)
        return [StdoutStats(tuple(due[at : at + MAX_COUNTED])) for at in chunks]

    def close_all(self, bound_s: float = END_BOUND_S) -> None:
        """The keeper's end: what is held goes out, then each socket closes once it
        delivered what it queued, its receiver is down, or `bound_s` is over. A fixed
        linger would throw away the lines of a receiver that is there but still taking the
        connection (a recorder on another machine whose handshake is slow under load)."""
        edges: list[StdoutEdge] = []
        for output in self.by_node.values():
            output.release()
            edges += output.edges
            output.edges = []
        self.by_node.clear()
        # the run ends: a receiver that is down does not come back (nothing restarts it)
        self.lingering = Ending(edges, bound_s, {EVERY_RECEIVER: True}).close()


def end_context(context: zmq.Context[zmq.Socket[bytes]], lingering: bool) -> None:
    """The keeper's context, ended: its own socket's last messages get up to 1 s; with a
    socket still lingering to a receiver that went down (`EndedOutputs.lingering`), the
    end runs in a thread given LINGERING_END_S, not the rest of that linger (the process
    exits; its own messages went out long before, as they were sent)."""
    if not lingering:
        context.destroy(linger=1000)
        return
    ender = threading.Thread(target=context.destroy, kwargs={"linger": 1000}, daemon=True)
    ender.start()
    ender.join(LINGERING_END_S)


def log_entry_value(node: str, record: LogRecord) -> object:
    """A log record as `send_logs_as` sends it: its JSON entry in a one-string pyarrow
    array, as dora sends it (`value[0].as_py()`), or the JSON text without pyarrow."""
    text = log_entry_json(node, record)
    try:
        import pyarrow as pa  # only a run with send_logs_as or dora/logs pays the import
    except ImportError:
        return text
    return pa.array([text], type=pa.string())
