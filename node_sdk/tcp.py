"""tcp:// edges (docs/cluster-data.md): CURVE keys, ZeroMQ heartbeats, the node's ZAP handler.

Imported only by a node whose configuration has a `tcp` section: a node on one machine
never pays for it. Every tcp:// socket a node opens is CURVE: an input is a CURVE server
with its machine's key pair, a sender a CURVE client that also pins the receiving
machine's public key (so a process without that secret cannot pose as the receiver). The
ZAP handler admits only the configured machine keys.

The ZAP handler is ours, not pyzmq's `zmq.auth.thread.ThreadAuthenticator`: that one
imports asyncio (about 50 ms here, more than `import zmq` itself) and configures itself
from certificate folders; ours is a REP socket in a thread that checks one set. It is
bound before any tcp:// input: libzmq lets every CURVE client in when no handler is bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import struct
import threading
from typing import Any, Final

import zmq
from zmq.utils import z85

from node_sdk.config import TcpSecurity
from node_sdk.errors import NodeError

log = logging.getLogger(__name__)

ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"  # fixed by RFC 27
ZAP_DOMAIN: Final = "flow"
MAX_SECRET_FILE: Final = 4096
MAX_TOLD: Final = 64  # refused peer keys logged, each once
STOP_WAIT_S: Final = 1.0
_HANDSHAKE_EVENT: Final = struct.pack("=H", zmq.EVENT_HANDSHAKE_SUCCEEDED)
_SECRET_LINE: Final = re.compile(r'^\s*secret-key\s*=\s*"(.{40})"\s*$', re.MULTILINE)


def load_secret(tcp: TcpSecurity) -> bytes:
    """The machine's secret key from `tcp.secret_file` (refused unless private to us), checked
    against `tcp.public_key`; NodeError names the file and the cause.

    The file holds the 40 Z85 characters of the key, alone or as the `secret-key = "..."`
    line of a ZeroMQ certificate file (what `zmq.auth.create_certificates` writes).
    """
    path = tcp.secret_file
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise NodeError(f"machine key {path}: cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NodeError(f"machine key {path}: not a regular file")
        if info.st_uid != os.getuid():
            raise NodeError(f"machine key {path}: owned by uid {info.st_uid}, not by us")
        if info.st_mode & 0o077:
            mode = oct(stat.S_IMODE(info.st_mode))
            raise NodeError(f"machine key {path}: mode {mode} lets others read it (chmod 600)")
        raw = os.read(fd, MAX_SECRET_FILE + 1)
    finally:
        os.close(fd)
    text = raw.decode("ascii", errors="replace")
    found = _SECRET_LINE.search(text)
    secret = found.group(1) if found else text.strip()
    if len(raw) > MAX_SECRET_FILE or len(secret) != 40:
        raise NodeError(f"machine key {path}: not a CURVE secret key (40 Z85 characters)")
    try:
        public = zmq.curve_public(secret.encode())
    except (zmq.ZMQError, ValueError):
        raise NodeError(f"machine key {path}: not a CURVE secret key") from None
    if public.decode() != tcp.public_key:
        raise NodeError(f"machine key {path}: does not match the configured public key")
    return secret.encode()


class Curve:
    """Sets up the node's tcp:// sockets: CURVE and heartbeats."""

    def __init__(self, tcp: TcpSecurity) -> None:
        self.tcp = tcp
        self._public = tcp.public_key.encode()
        self._secret = load_secret(tcp)
        self._zap: Zap | None = None

    def _heartbeat(self, sock: zmq.Socket[Any]) -> None:
        # a PING every `ivl`; no traffic for `timeout` after one drops the connection, and
        # TTL asks the peer to do the same on its side (docs/cluster-data.md, the bound)
        tcp = self.tcp
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(tcp.heartbeat_ivl_s * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(tcp.heartbeat_timeout_s * 1000)))
        # libzmq carries TTL in deciseconds: round up, never to 0 (which means no TTL)
        sock.setsockopt(zmq.HEARTBEAT_TTL, max(100, int(tcp.heartbeat_timeout_s * 1000)))

    def server(self, ctx: zmq.Context[Any], sock: zmq.Socket[Any]) -> None:
        """Before `bind`: a CURVE server whose peers the ZAP handler admits."""
        if self._zap is None:
            self._zap = Zap(ctx, self.tcp.admitted)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self._public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        self._heartbeat(sock)

    def close(self) -> None:
        """Stop the ZAP handler, if one was started (before the context is terminated)."""
        if self._zap is not None:
            self._zap.stop()
            self._zap = None

    def reconnects(self, sock: zmq.Socket[Any], window: int) -> Reconnects:
        """Before `connect`: watch a backpressure edge for reconnections (credits)."""
        return Reconnects(sock, window)

    def client(self, sock: zmq.Socket[Any], server_key: str | None, endpoint: str) -> None:
        """Before `connect`: a CURVE client that pins the receiver's machine key."""
        if server_key is None:
            raise NodeError(f"edge to {endpoint}: no server_key for a tcp:// receiver")
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self._public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret)
        self._heartbeat(sock)


class Reconnects:
    """The handshakes of a tcp:// backpressure edge's DEALER, seen from its sender.

    The receiver pays credits to the connection a message came on; a connection that broke
    takes the credits owed on it, and those in flight, with it (the receiver's ROUTER drops
    what it cannot route). So a sender blocked for credits that has reconnected since
    starts over with the receiver's whole window: the receiver may then hold up to twice
    its queue for a moment (what the old connection delivered), never more, and nothing
    is dropped.
    """

    def __init__(self, sock: zmq.Socket[Any], window: int) -> None:
        self.window = window
        self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._handshakes = 0

    def credits_lost(self) -> bool:
        """True once per reconnection (a handshake after the first) seen since last asked."""
        new = 0
        while True:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frames and frames[0][:2] == _HANDSHAKE_EVENT:
                new += 1
        self._handshakes += new
        return new > 0 and self._handshakes > 1

    def wait(self, sock: zmq.Socket[Any], seconds: float) -> None:
        """Until a credit or a handshake may be there, at most `seconds`."""
        items = [(sock, zmq.POLLIN), (self._monitor, zmq.POLLIN)]
        zmq.zmq_poll(items, int(seconds * 1000) + 1)

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._monitor.close(linger=0)


class Zap(threading.Thread):
    """The context's ZAP handler (RFC 27): CURVE peers whose key is admitted, nobody else.

    Bound in the constructor, in the caller's thread, so it is there before any input is;
    the thread then owns the socket (handed over with the start's memory barrier). It ends
    when the context is terminated.
    """

    def __init__(self, ctx: zmq.Context[Any], admitted: tuple[str, ...]) -> None:
        super().__init__(name="flow-zap", daemon=True)
        self._admitted = frozenset(z85.decode(key) for key in admitted)
        self._told: set[bytes] = set()  # refused keys logged already (once each, bounded)
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        try:
            self._sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise NodeError(f"cannot start the ZAP handler: {exc}") from None
        # `stop` says so on this PAIR: a socket is never closed under a thread that uses it
        endpoint = f"inproc://flow-zap-stop-{id(self)}"
        self._stopped = ctx.socket(zmq.PAIR)
        self._stopped.setsockopt(zmq.LINGER, 0)
        self._stopped.bind(endpoint)
        self._stopper = ctx.socket(zmq.PAIR)
        self._stopper.setsockopt(zmq.LINGER, 0)
        self._stopper.connect(endpoint)
        self.start()

    def run(self) -> None:
        sock, stopped = self._sock, self._stopped
        items = [(sock, zmq.POLLIN), (stopped, zmq.POLLIN)]
        try:
            while True:
                try:
                    ready = dict(zmq.zmq_poll(items))
                    if ready.get(stopped):
                        return
                    if ready.get(sock):
                        sock.send_multipart(self._answer(sock.recv_multipart()))
                except zmq.ContextTerminated:
                    return
        finally:
            for own in (sock, stopped):
                with contextlib.suppress(zmq.ZMQError):
                    own.close(linger=0)

    def stop(self) -> None:
        """End the thread and close its sockets (from the thread that made it)."""
        with contextlib.suppress(zmq.ZMQError):
            self._stopper.send(b"", zmq.NOBLOCK)
        self.join(STOP_WAIT_S)
        self._stopper.close(linger=0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        # version, request id, domain, address, identity, mechanism, credentials...
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, address, _identity, mechanism = request[:6]
        key = request[6] if len(request) == 7 else b""
        if version != b"1.0":
            return [b"1.0", request_id, b"500", b"unknown ZAP version", b"", b""]
        if domain == ZAP_DOMAIN.encode() and mechanism == b"CURVE" and key in self._admitted:
            user = z85.encode(key)
            return [b"1.0", request_id, b"200", b"OK", user, b""]
        if key not in self._told and len(self._told) < MAX_TOLD:
            self._told.add(key)
            shown = z85.encode(key).decode() if len(key) == 32 else repr(mechanism)[:40]
            log.warning("refused a tcp:// peer at %s: key %s is not admitted",
                        address.decode(errors="replace"), shown)  # fmt: skip
        return [b"1.0", request_id, b"400", b"machine key not admitted", b"", b""]
