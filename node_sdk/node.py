"""`Node`: a dora-shaped, synchronous handle on one node of a running dataflow."""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import zmq

from node_sdk import config as _config
from node_sdk import logbridge, wiring
from node_sdk.errors import DaemonUnreachable, NodeError, SendTimeout
from node_sdk.events import Event, EventType
from node_sdk.inbox import Inbox, InputStatistics, flush_releases, release_flushers
from node_sdk.inputs import Inputs
from node_sdk.receiver import CREDIT, GIVE, QUIT, SEND, Receiver, handle_control
from node_sdk.timers import Timers
from node_sdk.wire import (
    FLAG_LARGE,
    FLAG_PACKED,
    HEADER,
    KIND_BYTES,
    KIND_EOS,
    KIND_NONE,
    KIND_NUMPY,
    KIND_SHM,
    MAGIC,
    ZERO_COPY_MIN,
    decode_control,
    decode_payload,
    encode_control,
    encode_extra,
    encode_payload,
    metadata_extra,
    source_tail,
    unpack_credit,
    validate_metadata,
)

_new_event = tuple.__new__  # the hot path builds events without the keyword layer
_INPUT: Final = EventType.INPUT
DROP_OLDEST_SNDHWM: Final = 1000
# Inputs are drained all the time, so this is not a queue bound (the inbox is): it must be
# high, because zmq throws away what is in flight on a connection whose receiving side is
# held back by its HWM when the sender disconnects, and that would be a sender's newest
# messages and its end-of-stream. Credits bound backpressure inputs well below it.
INPUT_RCVHWM: Final = 50_000
PUSH_LINGER_MS: Final = 2000  # close flushes what is queued, for at most this long
EOS_TIMEOUT_S: Final = 2.0  # end-of-stream to a stuck receiver is given up after this
JOIN_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class OutputStatistics:
    """A snapshot of one output, summed over its edges (one message to N receivers is N)."""

    sent: int
    dropped: int


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    """A snapshot of every input and output of the node."""

    inputs: dict[str, InputStatistics]
    outputs: dict[str, OutputStatistics]


class _Edge:
    """Send-side state of one (output, receiving input) pair, precomputed once."""

    __slots__ = (
        "backpressure",
        "credits",
        "endpoint",
        "first_flags",
        "last_flags",
        "packed_flags",
        "receiver",
        "sent",
        "seq",
        "sock",
    )

    def __init__(
        self, sock: zmq.Socket[Any], receiver: str, backpressure: bool, window: int,
        endpoint: str = "",
    ) -> None:  # fmt: skip
        self.sock = sock
        self.receiver = receiver
        self.endpoint = endpoint  # live `unwire` finds the edge by it
        self.backpressure = backpressure
        self.credits = window  # backpressure: messages the receiver has room for
        # drop_oldest never blocks; backpressure blocks up to SNDTIMEO (set on the socket)
        self.first_flags = zmq.SNDMORE if backpressure else zmq.SNDMORE | zmq.NOBLOCK
        self.last_flags = 0 if backpressure else zmq.NOBLOCK
        self.packed_flags = self.last_flags  # a packed message is one frame
        self.seq = 0
        self.sent = 0


class _Output:
    __slots__ = ("edges", "id", "plain_extra", "source", "source_tail")

    def __init__(self, output_id: str, source: str, edges: list[_Edge]) -> None:
        self.id = output_id
        self.source = source
        self.plain_extra = encode_extra(source)  # the header extra when no metadata
        self.source_tail = source_tail(source)  # the end of one with metadata
        self.edges = edges

    def extra(self, metadata: dict[str, Any] | None, fields: dict[str, Any] | None) -> bytes:
        """The header extra of one message (validating `metadata`; NodeError names a key)."""
        if not metadata:
            return self.plain_extra if not fields else encode_extra(self.source, None, fields)
        if fields is None:
            return metadata_extra(self.source_tail, metadata)
        return encode_extra(self.source, validate_metadata(metadata), fields)


class Node:
    """One node of a dataflow: iterate it for events, `send_output` to send."""

    def __init__(self, node_id: str | None = None, *, dataflow: str | None = None) -> None:
        self._closed = True  # until the sockets exist, close() has nothing to do
        # with an id: a dynamic node, configured by the daemon it attaches to (SPEC 6)
        if node_id is None:
            cfg = _config.from_env()
        else:
            from node_sdk.attach import attach  # dynamic nodes only: static ones skip its imports

            cfg = attach(node_id, dataflow)
        self._cfg = cfg
        self._dynamic = node_id is not None
        self.node_id: str = cfg.node
        self.timed_out = False
        self._ended = False
        self._pending: deque[Event] = deque()
        self._outputs: dict[str, _Output] = {}
        self._drops: dict[str, int] = {}
        # live `wire`/`unwire` from the receiver thread; send_output applies them (wiring.py)
        self._rewires: deque[wiring.Rewire] = deque()
        self._retired: dict[str, int] = {}  # messages sent on edges unwired since
        self._timers = Timers()
        self._inbox = Inbox(cfg.data_inputs)
        self._send_timeout_s = cfg.send_timeout_s
        # shared memory for payloads at or above the threshold (shm.py); the pool is made
        # at the first such send, so a node that never sends one never imports it
        self._shm_threshold = cfg.shm_threshold if cfg.shm_threshold > 0 else 1 << 62
        self._pool: Any = None
        self._start_timeout_s = cfg.start_timeout_s
        logbridge.install()
        self._ctx = zmq.Context()
        self._closed = False
        try:
            self._open()
        except BaseException:
            self._abort()
            raise
        atexit.register(self.close)

    # ------------------------------------------------------------ setup and teardown

    def _open(self) -> None:
        cfg, ctx = self._cfg, self._ctx
        pulls = []
        for spec in cfg.data_inputs:
            pulls.append((spec, self._bind_input(spec)))
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0  # raised to a bounded linger once the hello is through
        dealer.identity = f"{cfg.run}/{cfg.node}/{cfg.generation}".encode()
        dealer.connect(cfg.daemon)
        early = self._await_start(dealer)
        wake_endpoint = f"inproc://flow-commands-{id(self)}"
        theirs = ctx.socket(zmq.PAIR)
        theirs.linger = 0
        theirs.bind(wake_endpoint)
        self._commands = ctx.socket(zmq.PAIR)
        self._commands.linger = 0
        self._commands.connect(wake_endpoint)
        self._connect_outputs()
        self._timers.start((t.id, t.period_ns) for t in cfg.timer_inputs)
        self._has_timers = bool(cfg.timer_inputs)  # fixed for the node's life
        hooks = wiring.ReceiverHooks(
            lambda: wiring.stats_message(self.statistics()), self._rewires, self._bind_input
        )
        self._inputs = Inputs(self._inbox, pulls)
        # zmq_poll items: the PAIR and the inputs (rebuilt when their version changes), or
        # the PAIR alone, for a word from the receiver thread
        self._poll_version = -1
        self._poll_owned: list[tuple[Any, int]] = []
        self._poll_waiting: list[tuple[Any, int]] = [(self._commands, zmq.POLLIN)]
        self._receiver = Receiver(self._inbox, self._inputs, dealer, theirs, hooks)
        for message in early:
            self._receiver.live(message)  # not started yet: this thread may act for it
        self._receiver.start()

    def _bind_input(self, spec: _config.DataInput) -> zmq.Socket[Any]:
        """A bound socket for one input (also called by the receiver thread for `add_input`)."""
        # a backpressure input pays credits back to each sender: it needs a ROUTER
        sock = self._ctx.socket(zmq.ROUTER if spec.policy == "backpressure" else zmq.PULL)
        sock.linger = 0
        sock.rcvhwm = INPUT_RCVHWM
        try:
            sock.bind(spec.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise NodeError(f"input {spec.id!r}: cannot bind {spec.endpoint}: {exc}") from None
        return sock

    def _await_start(self, dealer: zmq.Socket[Any]) -> list[dict[str, Any]]:
        """Say hello, wait for `start`; the live wiring messages that came before it."""
        cfg = self._cfg
        early: list[dict[str, Any]] = []
        hello = {"t": "hello", "run": cfg.run, "node": cfg.node,
                 "generation": cfg.generation, "pid": os.getpid()}  # fmt: skip
        dealer.send(encode_control(hello))
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not dealer.poll(int(remaining * 1000) + 1):
                raise DaemonUnreachable(cfg.daemon, self._start_timeout_s)
            try:
                message = decode_control(dealer.recv())
            except NodeError:
                continue
            if message["t"] == "start":
                return early
            if message["t"] in wiring.LIVE:
                early.append(message)
                continue
            handle_control(self._inbox, message)
            if message["t"] == "stop":
                return early  # the run is stopping before it started: the node sees STOP first

    def _connect_outputs(self) -> None:
        cfg = self._cfg
        for output_id, edges in cfg.outputs.items():
            built = [self._connect_edge(edge) for edge in edges]
            self._outputs[output_id] = _Output(output_id, f"{cfg.node}/{output_id}", built)

    def _connect_edge(self, edge: _config.Edge) -> _Edge:
        """One connected edge (at start, and for a live `wire`)."""
        backpressure = edge.policy == "backpressure"
        # backpressure: a DEALER, to read the receiver's credits on the same link
        sock = self._ctx.socket(zmq.DEALER if backpressure else zmq.PUSH)
        sock.sndhwm = max(edge.queue_size + 1, DROP_OLDEST_SNDHWM)
        sock.linger = PUSH_LINGER_MS
        sock.immediate = False  # queue for a receiver that is (re)connecting
        if backpressure:
            sock.sndtimeo = int(self._send_timeout_s * 1000)
        sock.connect(edge.endpoint)
        return _Edge(sock, edge.receiver, backpressure, edge.queue_size, edge.endpoint)

    def _apply_rewires(self) -> None:
        wiring.apply_rewires(self._rewires, self._outputs, self._connect_edge, self._retired)

    def _abort(self) -> None:
        """Undo a half-done `__init__` (the receiver is not started yet): nothing lingers."""
        self._closed = True
        self._ctx.destroy(linger=0)

    def close(self) -> None:
        """End-of-stream on every output, `bye` to the daemon, sockets closed; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ended = True
        atexit.unregister(self.close)
        if self._rewires:
            self._apply_rewires()  # end-of-stream goes to the edges live now, and only those
        if not self._dynamic:
            # a dynamic node's downstream inputs stay open while it is detached (SPEC 6)
            self._send_eos()
        receiver = self._receiver
        self._tell_receiver(SEND + encode_control({"t": "bye"}))
        self._tell_receiver(QUIT)  # if the receiver is gone already, joining is still bounded
        receiver.join(JOIN_TIMEOUT_S)
        if not receiver.is_alive():
            self._inputs.close()  # else it may still be reading them: the exit closes them
        self._close_shm()
        self._commands.close(linger=0)
        for output in self._outputs.values():
            for edge in output.edges:
                edge.sock.close(linger=PUSH_LINGER_MS)
        if not receiver.is_alive():
            self._ctx.term()  # waits for the bounded lingers only

    def _tell_receiver(self, command: bytes) -> None:
        """A command to the receiver thread; never blocks, which a PAIR whose peer has gone
        (a receiver thread that failed) would do."""
        with contextlib.suppress(zmq.ZMQError):
            self._commands.send(command, zmq.NOBLOCK)

    def _send_eos(self) -> None:
        deadline = time.monotonic() + EOS_TIMEOUT_S
        gen = self._cfg.generation
        for output in self._outputs.values():
            extra = output.plain_extra
            for edge in output.edges:
                header = HEADER.pack(MAGIC, KIND_EOS, 0, 0, gen, edge.seq, 0, len(extra)) + extra
                while True:
                    try:
                        edge.sock.send_multipart([header, b""], zmq.NOBLOCK)
                        break
                    except zmq.Again:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break  # stuck receiver: the daemon's upstream_done closes it
                        edge.sock.poll(int(remaining * 1000) + 1, zmq.POLLOUT)

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------ sending

    def send_output(
        self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """Send `data` on `output_id` to every receiver; flow adds `timestamp` to metadata."""
        if self._rewires:  # the daemon rewired this node's outputs (the one check per send)
            self._apply_rewires()
        output = self._outputs.get(output_id)
        if output is None:
            raise NodeError(self._undeclared(output_id))
        kind_of = type(data)
        if kind_of is bytes:  # the common cases skip the general encoder
            kind, body, fields, nbytes, safe = KIND_BYTES, data, None, len(data), True
        elif data is None:
            kind, body, fields, nbytes, safe = KIND_NONE, b"", None, 0, True
        else:
            kind, body, fields, nbytes, safe = encode_payload(data)
        extra = output.extra(metadata, fields)
        large = nbytes >= ZERO_COPY_MIN
        copy = not (safe and large)
        if nbytes >= self._shm_threshold:
            segment = self._shm_segment(output, nbytes)
            if segment is not None:
                segment.map[:nbytes] = body  # the one copy; receivers map it, none copies
                self._send_shared(output, segment, kind, nbytes, extra, body, copy)
                return
        stamp = time.time_ns()
        flags = FLAG_LARGE if large else FLAG_PACKED
        for edge in output.edges:
            self._push(output_id, edge, kind, flags, stamp, extra, body, copy)

    @contextlib.contextmanager
    def send_output_buffer(
        self,
        output_id: str,
        nbytes: int,
        metadata: dict[str, Any] | None = None,
        *,
        dtype: str | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> Iterator[memoryview]:
        """A writable buffer of `nbytes`, sent on `output_id` when the `with` block ends.

        At or above the shared-memory threshold it is a segment of the node's pool, so the
        data is written in place and never copied (dora's `send_output_raw`); below it, a
        private bytearray. With `dtype` (a numpy dtype string such as `"<f4"`) receivers
        get a numpy array of `shape` (1-D by default). `metadata` is read when the block
        ends, so the block may still fill it in. An exception in the block sends nothing.
        Do not touch the buffer after the block: receivers read it in place.
        """
        if self._rewires:
            self._apply_rewires()
        output = self._outputs.get(output_id)
        if output is None:
            raise NodeError(self._undeclared(output_id))
        if nbytes < 0:
            raise NodeError(f"output {output_id!r}: a buffer of {nbytes} bytes")
        kind, fields = KIND_BYTES, None
        if dtype is not None:
            kind, fields = KIND_NUMPY, _numpy_fields(dtype, shape, nbytes)
        segment = self._shm_segment(output, nbytes) if nbytes >= self._shm_threshold else None
        private = bytearray(nbytes) if segment is None else None
        view = memoryview(private if private is not None else segment.map)[:nbytes]  # type: ignore[union-attr]
        try:
            yield view
        except BaseException:
            if segment is not None:
                self._pool.give_back(segment)
            raise
        finally:
            with contextlib.suppress(BufferError):
                view.release()  # a numpy array the user made of it may still export it
        extra = output.extra(metadata, fields)
        if segment is not None:
            self._send_shared(output, segment, kind, nbytes, extra, segment.map, True)
            return
        assert private is not None
        value: Any = private
        if fields is not None:
            import numpy as np

            value = np.frombuffer(private, dtype=fields["dt"]).reshape(fields["sh"])
        self.send_output(output_id, value, metadata)

    def _shm_segment(self, output: _Output, nbytes: int) -> Any:
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
        self, output: _Output, segment: Any, kind: int, nbytes: int, extra: bytes,
        body: Any, copy: bool,
    ) -> None:  # fmt: skip
        """Send a descriptor of `segment` to local receivers, the bytes to remote ones."""
        pool = self._pool
        descriptor = pool.descriptor(segment, kind, nbytes)
        stamp = time.time_ns()
        holders = 0
        try:
            for edge in output.edges:
                if edge.endpoint.startswith("ipc://"):
                    holders += self._push(
                        output.id, edge, KIND_SHM, FLAG_PACKED, stamp, extra, descriptor
                    )
                else:  # a receiver on another machine gets the bytes
                    flags = FLAG_LARGE if nbytes >= ZERO_COPY_MIN else 0
                    inline = memoryview(body)[:nbytes]
                    self._push(output.id, edge, kind, flags, stamp, extra, inline, copy)
        finally:
            pool.publish(segment, holders)  # back to the pool once every holder released it

    def _push(
        self, output_id: str, edge: _Edge, kind: int, flags: int, stamp: int, extra: bytes,
        body: Any, copy: bool = True,
    ) -> bool:  # fmt: skip
        """One message on one edge, `[header, body]` unless `flags` says packed; False if
        dropped (the seq stays used: the receiver counts the gap as a drop)."""
        if edge.backpressure:
            if edge.credits <= 0:
                self._await_credit(output_id, edge)
            edge.credits -= 1
        edge.seq += 1
        gen = self._cfg.generation
        header = HEADER.pack(MAGIC, kind, flags, 0, gen, edge.seq, stamp, len(extra))
        packed = flags & FLAG_PACKED
        try:
            if packed:
                edge.sock.send(b"".join((header, extra, body)), edge.packed_flags)
            else:
                edge.sock.send(header + extra, edge.first_flags)
        except zmq.Again:
            if edge.backpressure:
                edge.seq -= 1  # nothing went out: no gap on a lossless edge
                edge.credits += 1
                raise SendTimeout(output_id, edge.receiver, self._send_timeout_s) from None
            self._drops[output_id] = self._drops.get(output_id, 0) + 1
            return False  # the seq stays used: the receiver counts the gap as a drop
        except zmq.ZMQError as exc:
            raise NodeError(f"output {output_id!r}: cannot send: {exc}") from None
        if not packed:
            # zmq takes a multipart message whole once its first part is in
            edge.sock.send(body, edge.last_flags, copy=copy)
        edge.sent += 1
        return True

    def _close_shm(self) -> None:
        """Give back what this node holds of others' segments, and unlink its own."""
        self._inbox.discard_queued()
        shm = sys.modules.get("node_sdk.shm")
        if shm is None:
            return
        if self._pool:
            self._pool.close()
        shm.close_releases()

    def _await_credit(self, output_id: str, edge: _Edge) -> None:
        """Block until the receiver has room again, at most `FLOW_SEND_TIMEOUT`."""
        deadline = time.monotonic() + self._send_timeout_s
        while edge.credits <= 0:
            try:
                edge.credits += unpack_credit(edge.sock.recv(zmq.NOBLOCK))
                continue
            except zmq.Again:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SendTimeout(output_id, edge.receiver, self._send_timeout_s)
            edge.sock.poll(int(remaining * 1000) + 1, zmq.POLLIN)

    def _undeclared(self, output_id: str) -> str:
        if self._closed:
            return f"cannot send on output {output_id!r}: the node is closed"
        declared = ", ".join(sorted(self._outputs)) or "none"
        return f"output {output_id!r} is not declared by node {self.node_id!r} ({declared})"

    # ------------------------------------------------------------ receiving

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None after the stream ended, or on timeout (`timed_out` says which)."""
        self.timed_out = False
        event = self._next(timeout)
        if event is None and not self._ended:
            self.timed_out = True
        return event

    def try_recv(self) -> Event | None:
        """The next event if one is ready now, else None."""
        return self._next(0)

    def drain(self) -> list[Event]:
        """Every event that is ready now."""
        events = []
        while (event := self._next(0)) is not None:
            events.append(event)
        return events

    def __iter__(self) -> Iterator[Event]:
        while (event := self._next(None)) is not None:
            yield event

    def _next(self, timeout: float | None) -> Event | None:
        if self._ended:
            return None
        if release_flushers:
            flush_releases()  # the notices of the events the caller let go of since
        inputs = self._inputs
        owned = inputs.enter()
        if not owned and not inputs.asked:
            inputs.asked = True  # user code kept us away: the receiver thread has the inputs
            self._tell_receiver(GIVE)
        try:
            return self._wait_event(timeout, owned)
        finally:
            inputs.leave()

    def _wait_event(self, timeout: float | None, owned: bool) -> Event | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox, timers, pending, inputs = self._inbox, self._timers, self._pending, self._inputs
        if owned and inbox.credit_asked:
            inputs.pay_credits()  # asked of the receiver thread, which gave the inputs back
        has_timers = self._has_timers
        while True:
            if has_timers:
                pending.extend(Event(EventType.INPUT, id=t) for t in timers.due())
            if pending:
                return pending.popleft()
            entry, credit_due = inbox.pop()
            if entry is not None:
                if credit_due:
                    if owned:
                        inputs.pay_credits()
                    else:
                        self._tell_receiver(CREDIT)
                if type(entry) is tuple:
                    return self._input_event(*entry)
                assert isinstance(entry, Event)
                if entry.type is EventType.STOP:
                    self._ended = True
                return entry
            if owned and inputs.drain_all():
                continue
            flush_releases()  # before idling: what was let go of goes out
            wait = timers.seconds_to_next()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = left if wait is None else min(wait, left)
            if self._idle(wait, owned) and not owned and inputs.owned_by_main():
                owned = True  # handed back: whatever the receiver thread owed is paid here
                inputs.pay_credits()

    def _idle(self, seconds: float | None, owned: bool) -> bool:
        """Wait for input (on the sockets themselves when we own them) or a word from the
        receiver thread, at most `seconds`; True when that thread said something."""
        if owned:
            inputs = self._inputs
            if self._poll_version != inputs.version:
                self._poll_owned = [(self._commands, zmq.POLLIN)]
                self._poll_owned += [(sock, zmq.POLLIN) for sock in inputs.sockets]
                self._poll_version = inputs.version
            items = self._poll_owned
        else:
            items = self._poll_waiting
        timeout_ms = -1 if seconds is None else math.ceil(seconds * 1000)
        commands = self._commands
        said = False
        # zmq_poll itself: zmq.Poller rebuilds its item list and result list on every call
        for sock, events in zmq.zmq_poll(items, timeout_ms):
            if not events:
                continue
            if sock is commands:
                with contextlib.suppress(zmq.Again):
                    while True:
                        commands.recv(zmq.NOBLOCK)  # wake or handed: only to look again
                said = True
            else:
                # one message: it is there, so no Again; the caller's drain takes the rest
                self._inputs.drain_socket(sock, 1)
        return said

    @staticmethod
    def _input_event(input_id: str, item: tuple[int, int, int, dict[str, Any], Any]) -> Event:
        seq, stamp, kind, extra, payload = item
        if kind == KIND_BYTES:
            # a packed payload is a read-only view of the frame's bytes already
            value: Any = payload if type(payload) is memoryview else memoryview(payload)
            if not value.readonly:
                value = value.toreadonly()
        elif kind == KIND_NONE:
            value = None
        else:
            value = decode_payload(kind, payload, extra)
        metadata = {"timestamp": stamp}
        user = extra.get("m")
        if user:
            metadata.update(user)  # a user's own `timestamp` key wins: user keys are kept
        return _new_event(Event, (_INPUT, input_id, value, metadata, None, seq))

    # ------------------------------------------------------------ about the node

    def dataflow_id(self) -> str:
        return self._cfg.run

    def restart_count(self) -> int:
        return self._cfg.restarts

    def node_config(self) -> dict[str, Any]:
        """The node's own mapping from the dataflow file."""
        return dict(self._cfg.config)

    def dataflow_descriptor(self) -> dict[str, Any]:
        """The dataflow file of this run, parsed."""
        import yaml  # only when asked: most nodes never are

        path = self._cfg.descriptor
        if path is None:
            raise NodeError(f"node {self.node_id!r} has no dataflow descriptor")
        try:
            with open(path, encoding="utf-8") as file:
                loaded = yaml.safe_load(file)
        except (OSError, yaml.YAMLError) as exc:
            raise NodeError(f"cannot read the dataflow descriptor {path}: {exc}") from None
        return loaded if isinstance(loaded, dict) else {}

    def statistics(self) -> NodeStatistics:
        outputs = {
            oid: OutputStatistics(
                sum(e.sent for e in out.edges) + self._retired.get(oid, 0),
                self._drops.get(oid, 0),
            )
            for oid, out in self._outputs.items()
        }
        return NodeStatistics(self._inbox.statistics(), outputs)

    def log(self, level: int | str, message: str) -> None:
        """Write one record to the node's log, as `logging` would."""
        logging.getLogger(self.node_id).log(logbridge.to_level(level), message)

    def __repr__(self) -> str:
        return f"<Node {self.node_id!r} of run {self._cfg.run}>"


def _numpy_fields(dtype: str, shape: tuple[int, ...] | None, nbytes: int) -> dict[str, Any]:
    """The header keys of a numpy payload of `nbytes` (`send_output_buffer`)."""
    import numpy as np

    dt = np.dtype(dtype)
    dims = (nbytes // max(dt.itemsize, 1),) if shape is None else tuple(shape)
    count = 1
    for dim in dims:
        count *= dim
    if count * dt.itemsize != nbytes:
        raise NodeError(f"a buffer of {nbytes} bytes is not a {dt} array of shape {dims}")
    return {"dt": dt.str, "sh": list(dims)}
