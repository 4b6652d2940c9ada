"""`python -m daemon join`: admit this machine with a token, once, before its daemon starts.

Blocking and short: connect with the token's admission key, present the machine's name and
its own public key, wait for `Admitted` or a refusal, and keep the coordinator's address and
key under FLOW_HOME/cluster/ so the daemon (and every later restart) rejoins without the
token. A refusal is one line (`JoinRefused`); `flow up --join` prints it and exits non-zero.
"""

from __future__ import annotations

import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from daemon.cluster.keys import Membership, machine_keys, write_membership
from daemon.cluster.link import Timing, client_socket
from daemon.model import cluster_messages as msg
from daemon.model.cluster import JOIN_TIMEOUT_S, check_machine_name, parse_token


class JoinRefused(Exception):
    """The join did not happen; the message is the one line to show."""


def join(home: Path, name: str, token_text: str, timeout: float = JOIN_TIMEOUT_S) -> Membership:
    token = parse_token(token_text)  # ClusterConfigError: one line
    check_machine_name(name)
    keys = machine_keys(home)
    admission_public = zmq.curve_public(token.admission_secret.encode()).decode()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = client_socket(
            context,
            Timing.current(),
            server_key=token.server_key,
            secret_key=None if token.plain else token.admission_secret,
        )
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        try:
            sock.connect(token.address)
            admission = admission_public if token.plain else ""
            sock.send(msg.encode(msg.Join(name=name, public_key=keys.public, admission=admission)))
            reply = _await_reply(sock, monitor, token.address, timeout)
        finally:
            # stop the monitor and close both sockets, in order, before the context ends:
            # libzmq has hung terminating a context after a socket monitor (libzmq#1279)
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
    finally:
        context.destroy(linger=0)
    if isinstance(reply, msg.Refused):
        raise JoinRefused(f"the coordinator at {token.address} refused machine {name}: "
                          f"{reply.reason}")  # fmt: skip
    membership = Membership(name=name, coordinator_address=token.address,
                            coordinator_key=token.server_key, plain=token.plain)  # fmt: skip
    write_membership(home, membership)
    return membership


def _await_reply(sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes], address: str,
                 timeout: float) -> msg.Admitted | msg.Refused:  # fmt: skip
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready = dict(poller.poll(int(left * 1000) + 1))
        if monitor in ready:
            recv_monitor_message(monitor)
            raise JoinRefused(f"the coordinator at {address} refused the token: revoked, "
                              "expired, or not one of its tokens")  # fmt: skip
        if sock in ready:
            try:
                reply = msg.decode(sock.recv())
            except msg.LinkMessageError:
                continue
            if isinstance(reply, msg.Admitted | msg.Refused):
                return reply
    raise JoinRefused(f"no answer from the coordinator at {address} within {timeout:g} s: is "
                      "it running, reachable, and is the token its own?")  # fmt: skip
