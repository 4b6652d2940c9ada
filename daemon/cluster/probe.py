"""A link probe's two sockets (`flow doctor --cluster`): the receiver bound as a node's tcp://
input is, the sender connected as a node's edge is, both set up by the node's own code
(`node_sdk.tcp.Curve`: CURVE with the machine's key file, the ZAP check, heartbeats).

Blocking: each runs in a worker thread with a zmq context of its own (its own ZAP handler),
every wait bounded by a poll timeout. The sender watches its socket's monitor, so a failure
says where it stopped: no TCP connection, a refused key, no CURVE handshake, or messages of
one size that never arrive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Final

import attrs
import zmq

from daemon.cluster.keys import KeyPair, secret_key_file
from daemon.cluster.link import Timing
from daemon.model.cluster import ClusterConfigError
from daemon.model.cluster_probe import ANSWERS_PER_PROBE, SMALL_BYTES, acknowledgement, payload
from daemon.model.units import format_size
from node_sdk.config import TcpSecurity
from node_sdk.errors import NodeError
from node_sdk.links import EVENT  # a monitor event parsed here: zmq.utils.monitor imports asyncio
from node_sdk.tcp import Curve
from node_sdk.wire import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

POLL_MS: Final = 100  # how often a receiver looks at its stop flag
_EVENTS: Final = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)  # fmt: skip


class ProbeFailed(Exception):
    """A probe that could not be set up or did not get its answers; the one-line cause, and
    the small message's round trip when only the large one failed."""

    def __init__(self, cause: str, small_s: float | None = None) -> None:
        super().__init__(cause)
        self.small_s = small_s


@attrs.frozen
class Measured:
    """A link's round trips: a small message on the open connection, then the large one."""

    small_s: float
    large_s: float


def security(home: Path, keys: KeyPair, timing: Timing, admitted: tuple[str, ...]) -> TcpSecurity:
    """The `tcp` section a node placed on this machine would get (daemon/model/routing.py);
    ProbeFailed when its key file cannot be written."""
    try:
        secret_file = secret_key_file(home, keys)
    except (ClusterConfigError, OSError) as exc:
        raise ProbeFailed(f"this machine's key file: {exc}") from None
    return TcpSecurity(public_key=keys.public, secret_file=str(secret_file), admitted=admitted,
                       heartbeat_ivl_s=timing.heartbeat,
                       heartbeat_timeout_s=timing.lost_after)  # fmt: skip


class Receiver:
    """A ROUTER bound on `endpoint` as a tcp:// input is; `serve` acknowledges each message."""

    def __init__(self, tcp: TcpSecurity, endpoint: str) -> None:
        self._ctx: zmq.Context[zmq.Socket[Any]] = zmq.Context()
        self._curve: Curve | None = None
        self._sock: zmq.Socket[Any] | None = None
        try:
            self._sock = self._ctx.socket(zmq.ROUTER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # as an input: never more
            self._curve = Curve(tcp)
            self._curve.server(self._ctx, self._sock)
            self._sock.bind(endpoint)
        except (NodeError, zmq.ZMQError) as exc:
            self.close()
            raise ProbeFailed(f"cannot bind {endpoint}: {exc}") from None

    def serve(self, wait_s: float, stop: threading.Event) -> int:
        """Acknowledge messages until a whole probe's worth came, `wait_s` passed or `stop`
        is set; then close. How many were acknowledged."""
        deadline = time.monotonic() + wait_s
        served = 0
        sock = self._sock
        assert sock is not None  # bound in the constructor
        try:
            while served < ANSWERS_PER_PROBE and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not sock.poll(min(POLL_MS, int(left * 1000) + 1)):
                    continue
                frames = sock.recv_multipart(copy=False)
                if len(frames) == 2:
                    sock.send_multipart([frames[0], acknowledgement(frames[1].buffer)])
                    served += 1
        except zmq.ZMQError as exc:  # the sender then times out and says so; we only stop
            log.warning("cluster: a link probe receiver stopped: %s", exc)
        finally:
            self.close()
        return served

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.close(linger=0)
        if self._curve is not None:
            self._curve.close()  # the ZAP thread, before its context ends
        self._ctx.destroy(linger=0)


@attrs.define
class _Sender:
    """One probe's DEALER and what its monitor has told so far."""

    sock: zmq.Socket[Any]
    monitor: zmq.Socket[Any]
    endpoint: str
    seen: set[int] = attrs.field(factory=set)

    def answer(self, timeout_s: float) -> bytes | None:
        """The next acknowledgement, or None after `timeout_s`; events noted meanwhile."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(int(left * 1000) + 1))
            if self.monitor in ready:
                with contextlib.suppress(zmq.Again):
                    while True:
                        frames = self.monitor.recv_multipart(zmq.NOBLOCK)
                        self.seen.add(EVENT.unpack_from(frames[0])[0])
            if self.sock in ready:
                return bytes(self.sock.recv())
        return None

    def why_silent(self, what: str, timeout_s: float) -> str:
        """The cause of a missing answer, from the connection's events."""
        if zmq.EVENT_HANDSHAKE_FAILED_AUTH in self.seen:
            return "the receiver's ZAP check refused this machine's key"
        if self.seen & {zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL}:
            return "the CURVE handshake failed (a wrong machine key, or not a flow receiver)"
        if zmq.EVENT_CONNECTED not in self.seen:
            refused = " (refused: nothing listens there)" if (
                zmq.EVENT_CONNECT_RETRIED in self.seen) else ""  # fmt: skip
            return (f"no TCP connection to {self.endpoint} within {timeout_s:g} s{refused}: "
                    "the machine down, a route or a firewall")  # fmt: skip
        if zmq.EVENT_HANDSHAKE_SUCCEEDED not in self.seen:
            return f"TCP connected but no CURVE handshake within {timeout_s:g} s"
        return f"{what} not acknowledged within {timeout_s:g} s"


def send_probe(tcp: TcpSecurity, endpoint: str, server_key: str, large: int,
               timeout_s: float) -> Measured:  # fmt: skip
    """Send 8 B (the connection: TCP, CURVE, ZAP), 8 B again (its round trip) and `large`
    bytes to `endpoint` as a node's edge would; ProbeFailed says what did not come back."""
    ctx: zmq.Context[zmq.Socket[Any]] = zmq.Context()
    try:
        try:
            curve = Curve(tcp)
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            curve.client(sock, server_key, endpoint)
            sender = _Sender(sock, sock.get_monitor_socket(_EVENTS), endpoint)
        except (NodeError, zmq.ZMQError) as exc:
            raise ProbeFailed(f"edge to {endpoint}: {exc}") from None
        try:
            sock.connect(endpoint)
            small = payload(SMALL_BYTES)
            _exchange(sender, small, f"{SMALL_BYTES} B message", timeout_s)
            small_s = _exchange(sender, small, f"{SMALL_BYTES} B message", timeout_s)
            what = f"{format_size(large)} message"
            try:
                large_s = _exchange(sender, payload(large), what, timeout_s)
            except ProbeFailed as exc:
                # small ones pass on this very connection: the large ones are lost on the way
                # (a path MTU black hole, a middlebox), which nodes would never be told
                hint = f" ({SMALL_BYTES} B messages pass: large ones are lost on the way)"
                raise ProbeFailed(str(exc) + hint, small_s) from None
            return Measured(small_s, large_s)
        except zmq.ZMQError as exc:  # a bad endpoint, no file descriptor left
            raise ProbeFailed(f"edge to {endpoint}: {exc}") from None
        finally:
            sender.monitor.close(linger=0)
            sock.close(linger=0)
    finally:
        ctx.destroy(linger=0)


def _exchange(sender: _Sender, data: bytes, what: str, timeout_s: float) -> float:
    """Send `data`; its round trip once the right acknowledgement is back."""
    started = time.monotonic()
    if len(data) < (64 << 10):
        sender.sock.send(data)
    else:
        sender.sock.send(data, copy=False)  # zmq takes it as is: no copy of 8 MiB
    answer = sender.answer(timeout_s)
    if answer is None:
        raise ProbeFailed(sender.why_silent(what, timeout_s))
    if answer != acknowledgement(data):
        raise ProbeFailed(f"{what} arrived changed (the receiver saw "
                          f"{answer[:40].decode(errors='replace')!r})")  # fmt: skip
    return time.monotonic() - started
