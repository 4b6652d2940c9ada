"""`Node`: a dora-shaped, synchronous handle on one node of a running dataflow.

A facade: the send path is in send.py, the receive path in ownership.py (the node's
thread), receiver.py (the background thread) and inbox.py/inputs.py; the node channel's
messages in channel.py. This module joins them up and owns their lifetimes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import zmq

from node_sdk import channel, extra_json, logbridge, wiring
from node_sdk import config as _config
from node_sdk.errors import NodeError
from node_sdk.events import Event
from node_sdk.inbox import Inbox, InputStatistics
from node_sdk.inputs import Inputs, bind_input
from node_sdk.leases import Releases, ShmReader
from node_sdk.ownership import QUIT, SEND, Events, Ownership
from node_sdk.params import Params, ParamSurface
from node_sdk.receiver import Receiver, await_start
from node_sdk.send import OutputStatistics, Sender
from node_sdk.surface import DoraSurface
from node_sdk.timers import Timers
from node_sdk.uncaught import install as _install_excepthook

# Inputs are drained all the time, so this is not a queue bound (the inbox is): it must be
# high, because zmq throws away what is in flight on a connection whose receiving side is
# held back by its HWM when the sender disconnects, and that would be a sender's newest
# messages and its end-of-stream. Credits bound backpressure inputs well below it.
INPUT_RCVHWM: Final = 50_000
JOIN_TIMEOUT_S: Final = 5.0

_install_excepthook()  # a NodeError nobody caught: one line naming the author's call
extra_json.load()  # msgspec at import (the fork server's, before it forks), not at a message

__all__ = ["Node", "NodeStatistics", "OutputStatistics"]


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    """A snapshot of every input and output of the node."""

    inputs: dict[str, InputStatistics]
    outputs: dict[str, OutputStatistics]


class Node(DoraSurface, ParamSurface):
    """One node of a dataflow: iterate it for events, `send_output` to send."""

    # dora fires a timer's first tick at the start, flow one period later (the dora module)
    first_tick_at_once = False

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
        self._shm = ShmReader(Releases())  # owned here; the inbox and the events use it
        self._params = Params()  # filled before `start`; node.params (node_sdk/params.py)
        # a restarted generation counts gaps from the first message of each source it gets
        self._inbox = Inbox(cfg.data_inputs, self._shm.discard, resumed=cfg.generation > 1)
        start_timeout_s = cfg.start_timeout_s  # the daemon's setting, never the node's env
        # a dynamic node's stderr is its own terminal: it stores its records itself
        logbridge.install(logbridge.dynamic_log(cfg.run, cfg.node) if self._dynamic else None)
        # tcp:// edges (another machine): CURVE keys, heartbeats, ZAP; imported only then
        self._curve: Any = None
        self._links: Any = None
        if cfg.tcp is not None:
            from node_sdk import links, tcp

            self._curve = tcp.Curve(cfg.tcp)  # NodeError: the key file is missing or open
            self._links = links.Links(self._inbox, cfg.tcp.link_grace_s)
        self._ctx = zmq.Context()
        self._sender = Sender(self._ctx, cfg, cfg.send_timeout_s, self._curve)
        # the one hot call skips the facade: `node.send_output` is the sender's own method
        self.send_output = self._sender.send_output  # type: ignore[method-assign]
        self._closed = False
        try:
            self._open(start_timeout_s)
        except BaseException:
            self._closed = True
            if self._curve is not None:
                self._curve.close()  # its thread's sockets, closed by that thread
            self._ctx.destroy(linger=0)  # the receiver is not started yet: nothing lingers
            raise
        atexit.register(self.close)

    def _open(self, start_timeout_s: float) -> None:
        cfg, ctx = self._cfg, self._ctx
        pulls = [(spec, self._bind_input(spec)) for spec in cfg.data_inputs]
        for spec, sock in pulls:
            if self._links is not None and _config.is_tcp(spec.endpoint):
                self._links.watch(spec.id, sock)
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0  # raised to a bounded linger once the hello is through
        dealer.identity = f"{cfg.run}/{cfg.node}/{cfg.generation}".encode()
        dealer.connect(cfg.daemon)
        early, started = await_start(dealer, cfg, self._inbox, start_timeout_s, self._on_param)
        wake_endpoint = f"inproc://flow-commands-{id(self)}"
        theirs = ctx.socket(zmq.PAIR)
        theirs.linger = 0
        theirs.bind(wake_endpoint)
        commands = ctx.socket(zmq.PAIR)
        commands.linger = 0
        commands.connect(wake_endpoint)
        self._sender.connect()
        timers = Timers(first_at_once=self.first_tick_at_once)
        if started:  # else STOP came before start, and no tick may come before it
            timers.start((t.id, t.period_ns) for t in cfg.timer_inputs)
        inputs = self._inputs = Inputs(self._inbox, pulls)
        inputs.links = self._links
        ownership = Ownership()
        self._events = Events(self._inbox, inputs, ownership, timers, commands, self._shm)
        self._events.has_timers = bool(cfg.timer_inputs)  # fixed for the node's life
        self._events.params = self._params
        self._params.answer = lambda frame: self._events.tell(SEND + frame)
        traffic = self._events.traffic.report
        report = lambda: wiring.stats_message(  # noqa: E731
            self.statistics(), traffic(), self._sender.bytes_sent()
        )
        hooks = wiring.ReceiverHooks(
            report, self._sender.rewires, self._bind_input, param=self._on_param,
            receivers=self._sender.receivers,
        )  # fmt: skip
        self._receiver = Receiver(
            self._inbox, inputs, ownership, dealer, theirs, self._shm.releases, hooks,
            self._links,
        )  # fmt: skip
        for message in early:
            self._receiver.live(message)  # not started yet: this thread may act for it
        self._receiver.start()

    def _on_param(self, message: channel.Param) -> None:
        """A `param` message (receiver thread; this one before `start`): a PARAM event."""
        event = self._params.receive(message)
        if event is not None:
            self._inbox.push_event(event)

    def _bind_input(self, spec: _config.DataInput) -> zmq.Socket[Any]:
        """A bound socket for one input (also called by the receiver thread for `add_input`)."""
        return bind_input(self._ctx, spec, INPUT_RCVHWM, self._curve)

    def close(self, error: BaseException | None = None) -> None:
        """End-of-stream on every output, `bye` to the daemon, sockets closed; idempotent.
        `error`: what the node closes on (`with` passes it; at exit, an uncaught one)."""
        if self._closed:
            return
        if error is None:  # at the interpreter's exit after an exception nobody caught
            error = getattr(sys, "last_value", None)
        self._end_async()  # a worker thread of recv_async must leave the sockets first
        self._closed = True
        self._events.ended = True
        atexit.unregister(self.close)
        # a node that may come back ends only its generation: its receivers stay open, and
        # a dynamic node always may (its downstream inputs stay open while it is detached,
        # SPEC 6); they know then that nothing more of it is on the way (a tcp:// link
        # closing next is no broken link, links.py)
        may_return = self._dynamic or self._cfg.restartable or self._inbox.restart_requested
        self._sender.send_eos(final=not may_return)
        receiver, events = self._receiver, self._events
        self._params.settle(error)  # a PARAM event handled last: taken, unless it raised
        events.tell(SEND + channel.encode(channel.Bye()))
        # what is queued reaches the receivers still there or coming back; a static node's
        # receiver thread lives meanwhile, as the daemon's word on a down receiver comes to
        # it (flush.py). A dynamic node is detached by its bye: no word comes to it, and no
        # report of its receiver thread may follow the bye.
        outputs_first = not self._dynamic
        lingering = self._sender.close() if outputs_first else False
        events.tell(QUIT)  # if the receiver is gone already, joining is still bounded
        receiver.join(JOIN_TIMEOUT_S)
        if not outputs_first:
            lingering = self._sender.close()
        if not receiver.is_alive():
            self._inputs.close()  # else it may still be reading them: the exit closes them
        self._inbox.discard_queued()  # what was never read goes back to its senders
        self._shm.releases.close()
        events.commands.close(linger=0)
        if not receiver.is_alive():
            if self._curve is not None:
                self._curve.close()
            if lingering:  # for a receiver gone meanwhile: not worth waiting for (flush.py)
                threading.Thread(target=self._ctx.term, name="flow-linger", daemon=True).start()
            else:
                self._ctx.term()

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(exc)

    # ------------------------------------------------------------ sending

    def send_output(
        self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """Send `data` on `output_id` to every receiver; flow adds `timestamp` to metadata."""
        self._sender.send_output(output_id, data, metadata)

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
        with self._sender.send_buffer(output_id, nbytes, metadata, dtype, shape) as view:
            yield view

    # ------------------------------------------------------------ receiving

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None after the stream ended, or on timeout (`timed_out` says which)."""
        self.timed_out = False
        event = self._events.next(timeout)
        if event is None and not self._events.ended:
            self.timed_out = True
        return event

    def try_recv(self) -> Event | None:
        """The next event if one is ready now, else None."""
        return self._events.next(0)

    def drain(self) -> list[Event]:
        """Every event that is ready now."""
        return list(iter(self.try_recv, None))

    def __iter__(self) -> Iterator[Event]:
        return self._events.iterate()

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
        return NodeStatistics(self._inbox.statistics(), self._sender.statistics())

    def log(self, level: int | str, message: str) -> None:
        """Write one record to the node's log, as `logging` would."""
        logging.getLogger(self.node_id).log(logbridge.to_level(level), message)

    def __repr__(self) -> str:
        return f"<Node {self.node_id!r} of run {self._cfg.run}>"
