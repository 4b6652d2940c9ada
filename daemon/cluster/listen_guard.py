"""The coordinator's port, closed to new connections while the daemon runs short of
descriptors.

Every TCP connection to the port holds one of the daemon's descriptors from its accept
until its handshake ends or times out (`HANDSHAKE_IVL`, daemon/cluster/link.py), and anyone
who can reach the port can open them, key or no key. At the open-file limit libzmq aborts
the daemon at its next `ipc://` accept (daemon/run/limits.py): a flood of silent
connections from another host would end it. So while fewer than a quarter of its
descriptors are left the port is unbound: the kernel refuses new connections, those in
their handshake time out, and the links already made go on. It is bound again once half of
them are free.
"""

from __future__ import annotations

import logging
import resource

import trio
import zmq

from daemon.run.limits import FD_RESERVE, fds_left

log = logging.getLogger(__name__)

# the descriptors left are counted at each connection the port accepts (its monitor's
# event), at least this often, and this often while the port is closed
GUARD_S = 1.0
CLOSED_POLL_S = 0.05
MAX_EVENTS = 1000  # monitor events taken at one wake, before others run
LISTEN_BACKLOG = 32  # connections the kernel holds for one accept round of libzmq


def fd_floors() -> tuple[int, int]:
    """(below this many descriptors left the port closes, from this many it opens again)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(4 * FD_RESERVE, soft // 4), max(8 * FD_RESERVE, soft // 2)


async def guard_listen(socket: zmq.Socket[bytes], endpoint: str) -> None:
    """Unbind `socket` from `endpoint` while descriptors run short, bind it again after.
    Runs in the socket's own trio task's thread (a zmq socket is not thread-safe)."""
    monitor = socket.get_monitor_socket(zmq.EVENT_ACCEPTED)
    try:
        bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)  # `unbind` takes no wildcard
        while True:
            if bound:
                await _accepted(monitor)
            else:
                await trio.sleep(CLOSED_POLL_S)
            low, high = fd_floors()  # the limit may change under a running daemon (prlimit)
            left = fds_left()
            if bound and left < low:
                try:
                    socket.unbind(bound)
                except zmq.ZMQError as exc:
                    log.warning("cluster: cannot close %s to new connections: %s", bound, exc)
                    continue
                log.warning("cluster: %d descriptors left: %s closed to new connections "
                            "until %d are free (a flood of connections?)", left, endpoint,
                            high)  # fmt: skip
                bound = ""
            elif not bound and left >= high:
                try:
                    socket.bind(endpoint)
                except zmq.ZMQError as exc:  # the port taken meanwhile: tried again later
                    log.warning("cluster: cannot listen on %s again yet: %s", endpoint, exc)
                    continue
                bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)
                log.warning("cluster: listening on %s again (%d descriptors free)", endpoint,
                            left)  # fmt: skip
    finally:
        socket.disable_monitor()
        monitor.close(linger=0)


async def _accepted(monitor: zmq.Socket[bytes]) -> None:
    """Until the port accepted a connection (or GUARD_S passed): its events taken."""
    fd = int(monitor.getsockopt(zmq.FD))
    with trio.move_on_after(GUARD_S):
        while not int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            await trio.lowlevel.wait_readable(fd)  # edge-triggered: EVENTS is looked at again
    for _ in range(MAX_EVENTS):
        try:
            monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
