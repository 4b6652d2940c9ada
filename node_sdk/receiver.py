"""The one background thread that owns a node's input sockets and its daemon DEALER.

It polls the input sockets, the DEALER and an inproc PAIR through which the node's own
thread hands it work (`credit`, `send`, `quit`), decodes headers and fills the `Inbox`.
Inputs are drained all the time: that is what lets `drop_oldest` keep the newest messages
(the zmq queue never fills, so senders are never refused), and it is what keeps data in
flight from being lost, since zmq drops what a throttled receiver has not taken when the
sender disconnects. `backpressure` inputs bind a ROUTER instead of a PULL, so the credits
that bound their senders (see inbox.py) can go back on the same connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Final

import zmq

from node_sdk.config import DataInput
from node_sdk.errors import NodeError
from node_sdk.events import StopCause
from node_sdk.inbox import Frame, Inbox
from node_sdk.wire import (
    FLAG_LARGE,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    decode_control,
    decode_extra,
    encode_control,
    pack_credit,
)
from node_sdk.wiring import LIVE, ReceiverHooks, parse_add_input, parse_rewire

log = logging.getLogger(__name__)

# Commands on the PAIR, first byte: credit (pay back what the inbox owes), send (rest of
# the frame goes to the daemon), quit (send nothing more, close, exit).
CREDIT: Final = b"c"
SEND: Final = b"s"
QUIT: Final = b"q"

_BATCH: Final = 256  # frames taken from one socket per poll, so inputs take turns
_EXTRA_CACHE_MAX: Final = 256  # distinct header extras remembered (same source, metadata)
_EXTRA_CACHE_LEN: Final = 512  # extras longer than this are parsed every time
DEALER_LINGER_MS: Final = 1000


class Receiver(threading.Thread):
    """Owns the input sockets, `dealer` and the PAIR end `commands` once started."""

    def __init__(
        self,
        inbox: Inbox,
        inputs: list[tuple[DataInput, zmq.Socket[Any]]],
        dealer: zmq.Socket[Any],
        commands: zmq.Socket[Any],
        hooks: ReceiverHooks | None = None,
    ) -> None:
        super().__init__(name="flow-receiver", daemon=True)
        self._hooks = hooks  # live wiring and the stats report (wiring.py)
        self._poller = zmq.Poller()
        self._inbox = inbox
        self._pulls = inputs
        self._dealer = dealer
        self._commands = commands
        self._extras: dict[bytes, dict[str, Any]] = {}
        self._by_id = {spec.id: sock for spec, sock in inputs}
        self._by_socket = {sock: spec for spec, sock in inputs}
        self.malformed = 0  # frames that were not flow data frames (counted, dropped)

    def run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # a bug here must not leave the node waiting forever
            self._inbox.push_error(f"the receiver thread failed: {exc!r}")
        finally:
            for _, sock in self._pulls:
                sock.close(linger=0)
            self._dealer.close(linger=DEALER_LINGER_MS)
            self._commands.close(linger=0)

    def _serve(self) -> None:
        poller = self._poller
        poller.register(self._commands, zmq.POLLIN)
        poller.register(self._dealer, zmq.POLLIN)
        by_socket = self._by_socket  # grows with `add_input`
        for sock in by_socket:
            poller.register(sock, zmq.POLLIN)
        hooks = self._hooks
        next_report = time.monotonic() + (hooks.every_s if hooks else 0.0)
        while True:
            timeout_ms = None
            if hooks is not None:
                now = time.monotonic()
                if now >= next_report:
                    self._report(hooks)
                    next_report = now + hooks.every_s  # never closer than that, late or not
                timeout_ms = int((next_report - now) * 1000) + 1
            for sock, _ in poller.poll(timeout_ms):
                if sock is self._commands:
                    if not self._commands_ready():
                        return
                elif sock is self._dealer:
                    self._daemon_ready()
                else:
                    self._drain(by_socket[sock], sock)

    def _commands_ready(self) -> bool:
        """Run every queued command; False on quit."""
        while True:
            try:
                command = self._commands.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            verb = command[:1]
            if verb == CREDIT:
                self._pay_credits()
            elif verb == SEND:
                # a full pipe means the daemon is gone: nothing to tell it
                with contextlib.suppress(zmq.Again):
                    self._dealer.send(command[1:], zmq.NOBLOCK)
            elif verb == QUIT:
                return False

    def _pay_credits(self) -> None:
        for input_id, route, count in self._inbox.take_credits():
            # a sender that is gone is simply not routable: ROUTER drops silently
            with contextlib.suppress(zmq.Again):
                self._by_id[input_id].send_multipart([route, pack_credit(count)], zmq.NOBLOCK)

    def _daemon_ready(self) -> None:
        while True:
            try:
                raw = self._dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = decode_control(raw)
            except NodeError:
                continue  # not ours to act on; the daemon speaks JSON objects
            if message["t"] in LIVE:
                self.live(message)
            else:
                handle_control(self._inbox, message)

    def _report(self, hooks: ReceiverHooks) -> None:
        """The `stats` report (the heartbeat of a dynamic node)."""
        # a full pipe means the daemon is gone: nothing to tell it
        with contextlib.suppress(zmq.Again):
            self._dealer.send(encode_control(hooks.report()), zmq.NOBLOCK)

    def live(self, message: dict[str, Any]) -> None:
        """`add_input` here; `wire`/`unwire` to the node's thread, which owns the outputs."""
        hooks = self._hooks
        if hooks is None:
            return
        try:
            if message["t"] == "add_input":
                self._add_input(hooks, parse_add_input(message))
            else:
                hooks.rewires.append(parse_rewire(message))
        except (ValueError, NodeError) as exc:
            log.warning("live wiring refused: %s", exc)

    def _add_input(self, hooks: ReceiverHooks, spec: DataInput) -> None:
        if spec.id in self._by_id:
            self._inbox.add_input(spec)  # an input we have: only more sources for it
            return
        sock = hooks.bind_input(spec)  # bound before the inbox knows it: a failure leaves none
        self._inbox.add_input(spec)
        self._pulls.append((spec, sock))
        self._by_id[spec.id] = sock
        self._by_socket[sock] = spec
        self._poller.register(sock, zmq.POLLIN)

    def _drain(self, spec: DataInput, sock: zmq.Socket[Any]) -> None:
        """Move ready frames of one input into the inbox."""
        routed = spec.policy == "backpressure"  # a ROUTER: the sender's id comes first
        frames: list[Frame] = []
        extras = self._extras
        for _ in range(_BATCH):
            try:
                message = self._recv(sock, routed)
            except zmq.Again:
                break
            if message is None:
                self.malformed += 1
                continue
            route, header, payload = message
            if len(header) < HEADER_SIZE:
                self.malformed += 1
                continue
            magic, kind, _, _, generation, seq, stamp, size = HEADER.unpack_from(header)
            if magic != MAGIC or len(header) != HEADER_SIZE + size:
                self.malformed += 1
                continue
            raw_extra = header[HEADER_SIZE:]
            extra = extras.get(raw_extra)
            if extra is None:
                try:
                    extra = decode_extra(raw_extra)
                except NodeError:
                    self.malformed += 1
                    continue
                if size <= _EXTRA_CACHE_LEN:
                    if len(extras) >= _EXTRA_CACHE_MAX:
                        extras.clear()
                    extras[raw_extra] = extra  # shared: readers copy, never mutate it
            frames.append((extra.get("s"), generation, seq, stamp, kind, extra, payload, route))
        self._inbox.push(spec.id, frames)

    @staticmethod
    def _recv(sock: zmq.Socket[Any], routed: bool) -> tuple[bytes | None, bytes, Any] | None:
        """One `[route,] header, payload` message, or None (consumed) if it has another shape.

        Frame by frame rather than `recv_multipart(copy=False)`: small frames as bytes cost
        a quarter of zmq.Frame objects; only a payload the header flags as large stays a
        zero-copy frame.
        """
        route = sock.recv(zmq.NOBLOCK) if routed else None
        if routed and not sock.rcvmore:
            return None
        header = sock.recv(zmq.NOBLOCK)  # a message's parts arrive together: never Again
        if not sock.rcvmore:
            return None
        large = len(header) > 5 and header[5] & FLAG_LARGE
        payload = sock.recv(zmq.NOBLOCK, copy=not large)
        if sock.rcvmore:
            while sock.rcvmore:
                sock.recv(zmq.NOBLOCK)
            return None
        return route, header, payload


def handle_control(inbox: Inbox, message: dict[str, Any]) -> None:
    """Act on one daemon message (`stop`, `upstream_done`); others (a late `start`) are ignored."""
    kind = message["t"]
    if kind == "stop":
        inbox.push_stop(StopCause.STOP_REQUESTED)
    elif kind == "upstream_done":
        input_id, source = message.get("input"), message.get("source")
        if isinstance(input_id, str) and isinstance(source, str):
            inbox.close_source(input_id, source)
