"""A blocking control-protocol client: one DEALER per request, polled with a timeout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cli.errors import CliError, DaemonError, DaemonUnreachable
from node_sdk import paths

PROTOCOL_VERSION = 1


def home_path(home: Path | None = None) -> Path:
    """The FLOW_HOME this CLI talks about (explicit, else from the environment)."""
    return home if home is not None else paths.flow_home()


def request(
    type: str, body: dict[str, Any], *, timeout: float = 10.0, home: Path | None = None
) -> dict[str, Any]:
    """Send one request and return the reply's body.

    Raises `DaemonUnreachable` when the socket file is missing or no reply comes within
    `timeout` seconds, `DaemonError` when the daemon answers `ok: false`.
    """
    import zmq  # lazy: `flow --version` and `flow check` never need it

    endpoint = paths.control_endpoint(home_path(home))
    if not Path(endpoint.removeprefix("ipc://")).exists():
        raise DaemonUnreachable(endpoint)
    req_id = os.urandom(8).hex()
    frame = json.dumps({"v": PROTOCOL_VERSION, "id": req_id, "type": type, "body": body})
    sock: Any = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", frame.encode()])
        reply = _await_reply(sock, req_id, timeout)
    finally:
        sock.close()
    if reply is None:
        raise DaemonUnreachable(endpoint)
    return _unpack(reply)


def _await_reply(sock: Any, req_id: str, timeout: float) -> dict[str, Any] | None:
    """The reply whose id matches ours; replies to other ids are discarded."""
    import time

    import zmq

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
            return None
        frames = sock.recv_multipart()
        try:
            reply = json.loads(frames[-1])
        except ValueError:
            continue
        if isinstance(reply, dict) and reply.get("id") in (req_id, None):
            # an id of null is an error the daemon could not attribute: it is for us, as
            # nothing else is in flight on this socket
            return reply
    return None


def _unpack(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok") is True:
        body = reply.get("body")
        return body if isinstance(body, dict) else {}
    error = reply.get("error")
    if reply.get("ok") is False and isinstance(error, dict):
        raise DaemonError(str(error.get("kind", "Error")), str(error.get("message", "")))
    raise CliError(f"malformed reply from the flow daemon: {json.dumps(reply)[:200]}")


def ping(*, timeout: float = 2.0, home: Path | None = None) -> dict[str, Any] | None:
    """The daemon's `ping` body, or None when it does not answer."""
    try:
        return request("ping", {}, timeout=timeout, home=home)
    except DaemonUnreachable:
        return None
