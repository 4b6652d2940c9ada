"""The cluster link's sockets: CURVE roles, ZeroMQ heartbeats, bounds (both ends)."""

from __future__ import annotations

import socket as stdlib_socket
from typing import Final

import attrs
import zmq

from daemon.model import settings
from daemon.model.cluster_messages import MAX_MESSAGE_BYTES

MIN_HEARTBEATS_PER_LOSS: Final = 2  # never `lost` after fewer than two missed heartbeats
MIN_HANDSHAKE_S: Final = 2.0  # a CURVE handshake across a slow network gets at least this


@attrs.frozen
class Timing:
    """The heartbeat interval and the silence after which a peer is `lost` (seconds)."""

    heartbeat: float
    lost_after: float

    @classmethod
    def current(cls) -> Timing:
        s = settings.current()
        heartbeat = s.cluster_heartbeat
        return cls(heartbeat, max(s.cluster_lost_after, MIN_HEARTBEATS_PER_LOSS * heartbeat))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def link_options(timing: Timing) -> dict[int, int]:
    """Options of every cluster socket: ZMTP heartbeats (a dead TCP peer is dropped and
    reconnected within `lost_after`), bounded messages, nothing kept at close."""
    return {
        zmq.HEARTBEAT_IVL: _ms(timing.heartbeat),
        zmq.HEARTBEAT_TIMEOUT: _ms(timing.lost_after),
        zmq.HEARTBEAT_TTL: _ms(timing.lost_after),
        # a connection that has not finished its handshake by then is dropped: a silent one
        # (anyone can open them) holds a descriptor that long at most (listen_guard.py)
        zmq.HANDSHAKE_IVL: _ms(max(timing.lost_after, MIN_HANDSHAKE_S)),
        zmq.MAXMSGSIZE: 4 * MAX_MESSAGE_BYTES,  # over it, libzmq drops the connection
        zmq.RECONNECT_IVL: 100,
        zmq.RECONNECT_IVL_MAX: _ms(max(timing.heartbeat, 0.5)),
        zmq.LINGER: 0,
        zmq.SNDHWM: 100,
        zmq.RCVHWM: 100,
    }


def client_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    timing: Timing,
    *,
    server_key: str,
    secret_key: str | None,
) -> zmq.Socket[bytes]:
    """A DEALER to the coordinator: CURVE client with `secret_key`, or plain when None."""
    sock = context.socket(zmq.DEALER)
    for option, value in link_options(timing).items():
        sock.setsockopt(option, value)
    if secret_key is not None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, zmq.curve_public(secret_key.encode()))
    return sock


def free_ports(host: str, count: int) -> list[int]:
    """`count` tcp ports free on `host` now (bound to port 0 and let go at once: a node binds
    one a moment later, so another process could take it meanwhile; the node then fails in
    one line, as on a taken port)."""
    sockets = [stdlib_socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
