"""A blocking control-protocol client: one DEALER per request, polled with a timeout.

Requests are the typed classes of `daemon.model.requests_*` (a command imports the module
of the one it sends); `call` returns the typed reply body (`daemon.model.replies_*`),
structured by the same converter the daemon uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from cli.errors import CliError, DaemonError, DaemonNoReply, DaemonUnreachable
from daemon.model.parts import END, is_part, split_request
from daemon.model.pids import daemon_exited, daemon_is_gone, is_flow_daemon, recorded_pid
from daemon.model.protocol import (
    ErrorReply,
    MalformedReply,
    decode_reply,
    encode_request,
    reply_id,
)
from daemon.model.replies_runs import PingReply
from daemon.model.requests_base import Request
from daemon.model.requests_runs import Ping
from node_sdk import paths, private

R = TypeVar("R")

# How often a waiting request checks that the daemon is still alive.
LIVENESS_CHECK_S = 0.25
PSUTIL_CHECK_AFTER_S = 0.5  # of waiting for a reply, before the daemon's pid is looked at closely
# what `_await_reply` returns for a reply in parts the daemon ended early (it drops the
# rest of a reply its client does not read fast enough: daemon.run.peer_outbox)
_CUT = b""


def home_path(home: Path | None = None) -> Path:
    """The FLOW_HOME this CLI talks about (explicit, else from the environment)."""
    return home if home is not None else paths.flow_home()


def call(
    req: Request[R], *, timeout: float = 10.0, home: Path | None = None,
    sent: Callable[[], None] | None = None,
) -> R:  # fmt: skip
    """Send one request and return its typed reply body; `sent` is called once the request
    is on its way (queued on the socket), before the reply is awaited.

    Raises `DaemonUnreachable` when the socket file is missing or the daemon is gone,
    `DaemonNoReply` (a DaemonUnreachable) when it is alive but no whole reply comes within
    `timeout` seconds, `DaemonError` when the daemon answers `ok: false`, and `CliError`
    when the reply is malformed.
    """
    import zmq  # lazy: `flow --version` and `flow check` never need it

    folder = home_path(home)
    endpoint = paths.control_endpoint(folder)
    check_socket_folder(folder)
    # A SIGKILLed daemon leaves its socket file behind: its pid file says at once that
    # nobody is there, where waiting for a reply would take the whole timeout (a pid taken
    # again since is found while the reply is awaited, by _await_reply's liveness check).
    if not Path(endpoint.removeprefix("ipc://")).exists() or daemon_exited(folder):
        raise DaemonUnreachable(endpoint)
    req_id, frame = encode_request(req)
    sock: Any = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        for message in split_request(frame):  # a large request goes in parts
            sock.send_multipart([b"", *message])
        if sent is not None:
            sent()
        data = _await_reply(sock, req_id, timeout, folder)
    finally:
        sock.close()
    if data is None or data is _CUT:
        if not _daemon_alive(folder):  # nothing says it is there: as if there were none
            raise DaemonUnreachable(endpoint)
        why = (f"its reply to {req.TYPE} was cut short (too large to hold for this client)"
               if data is _CUT else f"did not answer {req.TYPE} within {timeout:g} s")  # fmt: skip
        raise DaemonNoReply(endpoint, why)
    try:
        reply = decode_reply(data, req.REPLY)
    except MalformedReply as exc:
        raise CliError(f"malformed reply from the flow daemon: {exc}") from None
    if isinstance(reply, ErrorReply):
        raise DaemonError(reply.kind, reply.message)
    return cast(R, reply)


def _daemon_alive(home: Path) -> bool:
    """daemon.pid names a live flow daemon."""
    pid = recorded_pid(home)
    return pid is not None and is_flow_daemon(pid)


def check_socket_folder(home: Path) -> None:
    """Refuse a socket folder another user made: we would send them YAML and secrets."""
    try:
        private.check_private_dir(paths.socket_dir(home))
    except private.NotPrivate as exc:
        raise CliError(str(exc)) from None


def _await_reply(sock: Any, req_id: str, timeout: float, home: Path) -> bytes | None:
    """The reply whose id matches ours; None when the daemon dies or `timeout` passes,
    _CUT when the daemon ended our reply in parts before its end."""
    import zmq

    started = time.monotonic()
    deadline = started + timeout
    chunks: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(min(left, LIVENESS_CHECK_S) * 1000) + 1, zmq.POLLIN):
            # it died while we waited: say so now, not at the timeout. A pid gone is seen at
            # once; a zombie not reaped yet or a pid taken again needs psutil, whose import
            # (25 ms) a request answered within half a second is spared
            waited = time.monotonic() - started
            if daemon_exited(home) or (waited >= PSUTIL_CHECK_AFTER_S and daemon_is_gone(home)):
                return None
            continue
        frames = sock.recv_multipart()
        if is_part(frames):  # a reply over 32 KiB comes in parts, one right after another
            chunks.append(frames[-1])
            if frames[-2] != END:
                continue
            frame, chunks = b"".join(chunks), []
        else:
            frame = frames[-1]
        try:
            answers = reply_id(frame)
        except MalformedReply:
            if is_part(frames):  # ours, ended early: nothing else is in flight here
                return _CUT
            continue
        if answers in (req_id, None):
            # an id of null is an error the daemon could not attribute: it is for us, as
            # nothing else is in flight on this socket
            return bytes(frame)
    return None


def ping(*, timeout: float = 2.0, home: Path | None = None) -> PingReply | None:
    """The daemon's `ping` reply, or None when it does not answer."""
    try:
        return call(Ping(), timeout=timeout, home=home)
    except DaemonUnreachable:
        return None
