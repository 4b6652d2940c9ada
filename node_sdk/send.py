"""The send path of a node: output edges, backpressure credits, shared memory, end-of-stream.

Only the node's own thread calls into `Sender` (the receiver thread reads its plain int
counters for the `stats` report, racily, so sending never takes a lock). An edge is one
(output, receiving input) pair with its own socket and sequence numbers: a PUSH for a
drop_oldest input (never blocks: a full queue is a counted drop, and the receiver sees the
gap), a DEALER for a backpressure one (sends only against credits the receiver paid, and
blocks at most `FLOW_SEND_TIMEOUT`). Payloads at or above the shared-memory threshold go
into a segment of the node's pool (shm.py) and travel as descriptors to local receivers.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import zmq

from node_sdk import wiring
from node_sdk.arrow_buffers import BuffersBody
from node_sdk.channel import ReceiverDown, Rewire
from node_sdk.config import Edge, NodeConfig, is_tcp
from node_sdk.errors import MessageTooLarge, NodeError, SendTimeout
from node_sdk.flush import Ending
from node_sdk.layouts import numpy_fields
from node_sdk.outputs import Output, SendEdge
from node_sdk.wire import (
    ARROW_KINDS,
    DEFERRED_BODIES,
    FLAG_LARGE,
    FLAG_PACKED,
    GENERATION_END,
    HEADER,
    KIND_BYTES,
    KIND_EOS,
    KIND_NONE,
    KIND_NUMPY,
    KIND_SHM,
    MAGIC,
    MAX_EXTRA_BYTES,
    MAX_INLINE_BYTES,
    ZERO_COPY_MIN,
    encode_arrow_array,
    encode_extra,
    encode_payload,
    unpack_credit,
    write_payload,
)

DROP_OLDEST_SNDHWM: Final = 1000
# a send waiting for a credit looks this often for the daemon's word that its receiver
# ended for good (then it stops waiting: no SendTimeout for a receiver that never comes)
GIVE_UP_POLL_S: Final = 0.05
# zmq's own send, under pyzmq's Python one (which adds only routing ids and groups): half
# a microsecond less per small message, the largest piece of the send path after zmq itself
_SEND: Final = zmq.backend.Socket.send


@dataclass(frozen=True, slots=True)
class OutputStatistics:
    """A snapshot of one output: messages `sent`, each once however many edges it went out
    on; `dropped` summed over its edges (one message two full queues refused is two)."""

    sent: int
    dropped: int


class Sender:
    """The outputs of one node (its own thread only)."""

    def __init__(
        self, ctx: zmq.Context[Any], cfg: NodeConfig, send_timeout_s: float, curve: Any = None
    ) -> None:
        self._ctx = ctx
        self._curve = curve  # tcp.Curve: sets up tcp:// edges (a node with `tcp` keys only)
        self._cfg = cfg
        self._gen = cfg.generation
        self.send_timeout_s = send_timeout_s
        self.outputs: dict[str, Output] = {}  # each counts what it sent (outputs.py)
        # live `wire`/`unwire` from the receiver thread, applied before the next send, and
        # `receiver_down` of a receiver gone for good: its edges are given up (wiring.py)
        self.rewires: deque[Rewire | ReceiverDown] = deque()
        self.closed = False
        self._ending: Ending | None = None  # once the node ends (flush.py)
        self.receivers: dict[str, bool] = {}  # the daemon's word: node -> restarting (flush.py)
        # shared memory for payloads at or above the threshold (shm.py); the pool is made
        # at the first such send, so a node that never sends one never imports it
        self._shm_threshold = cfg.shm_threshold if cfg.shm_threshold > 0 else 1 << 62
        self._pool: Any = None
        self._ndarray: type[Any] = type(None)  # numpy.ndarray once sent (None is tested first)
        # the pyarrow Array classes sent so far (a few of pyarrow's own): their arrays skip
        # the general encoder's type checks, half a microsecond a message
        self._arrow_classes: set[type[Any]] = set()

    def connect(self) -> None:
        for output_id, edges in self._cfg.outputs.items():
            built = [self._connect_edge(edge) for edge in edges]
            self.outputs[output_id] = Output(output_id, f"{self._cfg.node}/{output_id}", built)

    def _connect_edge(self, edge: Edge) -> SendEdge:
        """One connected edge (at start, and for a live `wire`)."""
        backpressure = edge.policy == "backpressure"
        # backpressure: a DEALER, to read the receiver's credits on the same link
        sock = self._ctx.socket(zmq.DEALER if backpressure else zmq.PUSH)
        sock.sndhwm = max(edge.queue_size + 1, DROP_OLDEST_SNDHWM)
        sock.linger = 0  # `close` sets the linger it needs (flush.py)
        sock.immediate = False  # queue for a receiver that is (re)connecting
        if backpressure:
            sock.sndtimeo = int(self.send_timeout_s * 1000)
        link = None
        if is_tcp(edge.endpoint):  # another machine: CURVE, pinned to its key; heartbeats
            if self._curve is None:
                sock.close(linger=0)
                raise NodeError(f"edge to {edge.receiver}: tcp:// without the node's `tcp` keys")
            self._curve.client(sock, edge.server_key, edge.endpoint)
            if backpressure:
                link = self._curve.reconnects(sock, edge.queue_size)
        sock.connect(edge.endpoint)
        return SendEdge(sock, edge.receiver, backpressure, edge.queue_size, edge.endpoint, link)

    def apply_rewires(self) -> None:
        wiring.apply_rewires(self.rewires, self.outputs, self._connect_edge, self._forget)

    def _forget(self, node: str) -> None:
        """`node` ended for good: the segments only it held come back to the pool."""
        if self._pool:
            self._pool.forget(node)

    # ------------------------------------------------------------ sending

    def send_output(
        self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """Send `data` on `output_id` to every receiver; flow adds `timestamp` to metadata."""
        if self.rewires:  # the daemon rewired this node's outputs (the one check per send)
            self.apply_rewires()
        output = self.outputs.get(output_id)
        if output is None:
            raise NodeError(self.undeclared(output_id))
        kind_of = type(data)
        if kind_of is bytes:  # the common cases skip the general encoder
            kind, body, nbytes, safe = KIND_BYTES, data, len(data), True
            extra = output.extra(metadata, None)
        elif data is None:
            kind, body, nbytes, safe = KIND_NONE, b"", 0, True
            extra = output.extra(metadata, None)
        elif kind_of is self._ndarray:  # the header extra is made once per array layout
            kind = KIND_NUMPY
            body, nbytes, safe, extra = output.layouts.encode(data, metadata)
        elif kind_of in self._arrow_classes:
            kind, body, nbytes = encode_arrow_array(data)
            safe = True
            extra = output.extra(metadata, None)
        else:
            kind, body, fields, nbytes, safe = encode_payload(data, True)
            extra = output.extra(metadata, fields)
            if kind == KIND_NUMPY:  # numpy is imported: its arrays take the path above
                self._ndarray = sys.modules["numpy"].ndarray
            elif kind in ARROW_KINDS and isinstance(data, sys.modules["pyarrow"].Array):
                self._arrow_classes.add(kind_of)  # not a ChunkedArray: it is combined first
        if len(extra) > MAX_EXTRA_BYTES:  # receivers refuse a larger header, on either path
            raise MessageTooLarge(output_id, len(extra), MAX_EXTRA_BYTES, metadata=True)
        copy = not (safe and nbytes >= ZERO_COPY_MIN)
        if nbytes >= self._shm_threshold:
            segment = self._shm_segment(output, nbytes)
            if segment is not None:
                self._send_shared(output, segment, kind, nbytes, extra, body, copy)
                return
        if nbytes > MAX_INLINE_BYTES:
            # receivers cut off a larger frame (MAXMSGSIZE): refuse it here, with the cause
            raise MessageTooLarge(output_id, nbytes + len(extra), MAX_INLINE_BYTES)
        if type(body) in DEFERRED_BODIES:  # an arrow payload sent inline (an exact check)
            small = type(body) is BuffersBody and nbytes < ZERO_COPY_MIN  # joined in `_push`
            body = body.pieces if small else body.join()
        stamp = time.time_ns()
        flags = FLAG_LARGE if nbytes >= ZERO_COPY_MIN else FLAG_PACKED
        went = False
        for edge in output.edges:
            went |= self._push(output, edge, kind, flags, stamp, extra, body, copy)
        if went:  # once per message, not per edge: a receiver more (an observer, a
            output.sent += 1  # recorder) must not make the node look faster
            output.bytes += nbytes

    @contextlib.contextmanager
    def send_buffer(
        self, output_id: str, nbytes: int, metadata: dict[str, Any] | None,
        dtype: str | None, shape: tuple[int, ...] | None,
    ) -> Iterator[memoryview]:  # fmt: skip
        """`Node.send_output_buffer` (documented there)."""
        if self.rewires:
            self.apply_rewires()
        output = self.outputs.get(output_id)
        if output is None:
            raise NodeError(self.undeclared(output_id))
        if type(nbytes) is not int or nbytes < 0:  # bool is not a size either
            got = f"{type(nbytes).__name__} {nbytes!r:.40}"
            raise NodeError(f"output {output_id!r}: a buffer's size must be a count of bytes "
                            f"(an int >= 0), got {got}")  # fmt: skip
        kind, fields = KIND_BYTES, None
        if dtype is not None:
            kind, fields = KIND_NUMPY, numpy_fields(dtype, shape, nbytes)
        segment = self._shm_segment(output, nbytes) if nbytes >= self._shm_threshold else None
        if segment is None and nbytes > MAX_INLINE_BYTES:  # a buffer that could never go out
            raise MessageTooLarge(output_id, nbytes, MAX_INLINE_BYTES)
        private = bytearray(nbytes) if segment is None else None
        view = memoryview(private if private is not None else segment.map)[:nbytes]  # type: ignore[union-attr]
        try:
            yield view
            extra = output.extra(metadata, fields)  # read now: refused, the segment goes back
        except BaseException:
            if segment is not None:
                self._pool.give_back(segment)
            raise
        finally:
            with contextlib.suppress(BufferError):
                view.release()  # a numpy array the user made of it may still export it
        if segment is not None:
            self._send_shared(output, segment, kind, nbytes, extra, segment.map, True)
            return
        assert private is not None
        # private to this call and never written again: read-only, so zmq may take it
        # without a copy (a receiver on another machine: no segment to write into)
        value: Any = memoryview(private).toreadonly()
        if fields is not None:
            import numpy as np

            value = np.frombuffer(private, dtype=fields["dt"]).reshape(fields["sh"])
            value.flags.writeable = False
        self.send_output(output_id, value, metadata)

    def _shm_segment(self, output: Output, nbytes: int) -> Any:
        """A pool segment for a payload of `nbytes`, or None: send it inline."""
        pool = self._pool
        if pool is None:
            from node_sdk import shm  # the first large payload: nodes without one never pay

            cfg = self._cfg
            pool = self._pool = shm.pool_for(
                self._ctx, cfg.run, cfg.node, cfg.generation, cfg.daemon, self._shm_threshold
            ) or False  # fmt: skip
        if pool is False or not any(e.endpoint.startswith("ipc://") for e in output.edges):
            return None  # no receiver on this machine: nothing to share
        return pool.acquire(nbytes)

    def _send_shared(
        self, output: Output, segment: Any, kind: int, nbytes: int, extra: bytes,
        body: Any, copy: bool,
    ) -> None:  # fmt: skip
        """Send a descriptor of `segment` to local receivers, the bytes to remote ones."""
        pool = self._pool
        try:  # a failure anywhere gives the segment back (no holder)
            if body is not segment.map:  # send_output: the one copy, which receivers map
                body = write_payload(segment.map, body, nbytes)
                copy |= body is segment.map  # the segment is reused: zmq must not keep it
            stamp = time.time_ns()
            went = False
            for edge in output.edges:
                if edge.endpoint.startswith("ipc://"):
                    # each receiver its own token: the pool knows who still holds it
                    token = pool.hold(segment, edge.node)
                    descriptor = pool.descriptor(segment, kind, nbytes, token)
                    sent = False
                    try:
                        sent = self._push(
                            output, edge, KIND_SHM, FLAG_PACKED, stamp, extra, descriptor
                        )
                    finally:
                        if not sent:
                            pool.unhold(segment, token)
                    went |= sent
                else:  # a receiver on another machine gets the bytes
                    flags = FLAG_LARGE if nbytes >= ZERO_COPY_MIN else 0
                    inline = memoryview(body)[:nbytes]
                    went |= self._push(output, edge, kind, flags, stamp, extra, inline, copy)
            if went:  # once per message, as send_output counts
                output.sent += 1
                output.bytes += nbytes
        finally:
            pool.publish(segment)  # back to the pool once every holder released it

    def _push(
        self, output: Output, edge: SendEdge, kind: int, flags: int, stamp: int, extra: bytes,
        body: Any, copy: bool = True,
    ) -> bool:  # fmt: skip
        """One message on one edge, `[header, body]` unless packed; False if dropped (counted
        in `output.dropped`), or if its receiver was given up (while this send waited for a
        credit, or another edge's). The caller counts the message sent once, if an edge took it."""
        if edge.gone:
            return False
        if edge.backpressure:
            if edge.credits <= 0:
                self._await_credit(output.id, edge)
                if edge.gone:
                    return False  # its receiver ended for good meanwhile: not a drop
            edge.credits -= 1
        edge.seq += 1
        header = HEADER.pack(MAGIC, kind, flags, 0, self._gen, edge.seq, stamp, len(extra))
        packed = flags & FLAG_PACKED
        try:
            if packed:  # `body` a list: a small arrow payload's pieces, joined once here
                parts = (header, extra, *body) if type(body) is list else (header, extra, body)
                _SEND(edge.sock, b"".join(parts), edge.packed_flags)
            else:
                edge.sock.send(header + extra, edge.first_flags)
        except zmq.Again:
            if edge.backpressure:
                edge.seq -= 1  # nothing went out: no gap on a lossless edge
                edge.credits += 1
                raise SendTimeout(output.id, edge.receiver, self.send_timeout_s) from None
            output.dropped += 1
            return False  # the seq stays used: the receiver counts the gap as a drop
        except zmq.ZMQError as exc:
            raise NodeError(f"output {output.id!r}: cannot send: {exc}") from None
        if not packed:
            # zmq takes a multipart message whole once its first part is in
            edge.sock.send(body, edge.last_flags, copy=copy)
        return True

    def _await_credit(self, output_id: str, edge: SendEdge) -> None:
        """Block until the receiver has room again, at most `FLOW_SEND_TIMEOUT`, or until
        the daemon says it ended for good (`edge.gone`: the receiver thread's word is looked
        at every `GIVE_UP_POLL_S`)."""
        deadline = time.monotonic() + self.send_timeout_s
        while edge.credits <= 0:
            if self.rewires:
                self.apply_rewires()
                if edge.gone:
                    return
            try:
                edge.credits += unpack_credit(edge.sock.recv(zmq.NOBLOCK))
                continue
            except zmq.Again:
                pass
            if edge.link is not None and edge.link.credits_lost():
                edge.credits = edge.link.window  # reconnected: what was owed went with the link
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SendTimeout(output_id, edge.receiver, self.send_timeout_s)
            remaining = min(remaining, GIVE_UP_POLL_S)
            if edge.link is None:
                edge.sock.poll(int(remaining * 1000) + 1, zmq.POLLIN)
            else:
                edge.link.wait(edge.sock, remaining)

    def undeclared(self, output_id: str) -> str:
        if self.closed:
            return f"cannot send on output {output_id!r}: the node is closed"
        declared = ", ".join(sorted(self.outputs)) or "none"
        return f"output {output_id!r} is not declared by node {self._cfg.node!r} ({declared})"

    # ------------------------------------------------------------ the end

    def send_eos(self, *, final: bool = True) -> None:
        """End-of-stream on every edge live now; from here on the edges are watched, and
        waiting for room is bounded by `send_timeout_s` with `close` (flush.py).

        Not `final`: it ends this generation only (the node may be restarted), and the
        receivers keep their inputs open (docs/protocol.md).
        """
        if self.rewires:
            self.apply_rewires()  # end-of-stream goes to the edges live now, and only those
        ending = self._end()
        for output in self.outputs.values():
            extra = output.plain_extra
            if not final:
                extra = encode_extra(output.source, None, GENERATION_END)
            for edge in output.edges:
                header = HEADER.pack(MAGIC, KIND_EOS, 0, 0, self._gen, edge.seq, 0, len(extra))
                ending.send_last(edge, [header + extra, b""])

    def close(self) -> bool:
        """Close the edges once what they queued reached every receiver still there (at
        most `send_timeout_s` after the end began), then unlink this node's segments.
        True if an edge socket may still linger (its receiver went away meanwhile)."""
        self.closed = True
        ending = self._end()
        lingering = ending.close()
        if self._pool:
            # a receiver that is gone will not release what it holds: no wait for it
            self._pool.close(wait_s=0.0) if ending.any_down else self._pool.close()
        return lingering

    def _end(self) -> Ending:
        if self._ending is None:  # a node that ends without end-of-stream (dynamic) too
            edges = [edge for output in self.outputs.values() for edge in output.edges]
            self._ending = Ending(edges, self.send_timeout_s, self.receivers)
        return self._ending

    def statistics(self) -> dict[str, OutputStatistics]:
        return {oid: OutputStatistics(out.sent, out.dropped) for oid, out in self.outputs.items()}

    def bytes_sent(self) -> dict[str, int]:
        """Payload bytes per output of the messages `sent` counts (each message once)."""
        return {oid: out.bytes for oid, out in self.outputs.items()}
