"""The control protocol between the CLI and the daemon, sans-IO: pure encode and decode.

A request is one JSON object `{"v", "id", "type", "body"}`; a reply is `{"v", "id", "ok",
"body"}` or `{"v", "id", "ok": false, "error": {"kind", "message"}}` (docs/protocol.md).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import attrs

from daemon.errors import BadRequest, FlowError

VERSION = 1
MAX_REQUEST_BYTES = 1 << 20
# zmq drops a peer that sends more than this outright; between the two limits we reply.
SOCKET_MAX_MSG_BYTES = 16 << 20

REQUEST_TYPES = frozenset(
    {
        "ping",
        "start",
        "stop",
        "stop_all",
        "restart",
        "list",
        "status",
        "logs",
        "wait",
        "shutdown",
        "node_list",
        "node_info",
        "node_stop",
        "node_restart",
        "topic_list",
        "topic_subscribe",
        "topic_renew",
        "topic_unsubscribe",
        "top",
        "node_add",
        "node_remove",
        "node_connect",
        "node_disconnect",
    }
)


@attrs.frozen
class Request:
    """One decoded control request."""

    id: str
    type: str
    body: dict[str, Any]


class Garbage(Exception):
    """Bytes that are not a request at all: dropped with a log line, never answered."""


def new_request_id() -> str:
    return secrets.token_hex(8)


def encode_request(type_: str, body: dict[str, Any], request_id: str | None = None) -> bytes:
    payload = {"v": VERSION, "id": request_id or new_request_id(), "type": type_, "body": body}
    return json.dumps(payload).encode()


def decode_request(data: bytes, extra_types: frozenset[str] = frozenset()) -> Request:
    """Decode and check a request; raises `Garbage` or `BadRequest` (with `request_id`)."""
    if len(data) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request too large ({len(data)} bytes, limit {MAX_REQUEST_BYTES})")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Garbage(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Garbage("not a JSON object")
    request_id = obj.get("id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise Garbage("no request id")
    version = obj.get("v")
    if version != VERSION:
        raise _bad(request_id, f"protocol version {version!r} not supported (daemon speaks 1)")
    type_ = obj.get("type")
    if not isinstance(type_, str) or type_ not in REQUEST_TYPES | extra_types:
        raise _bad(request_id, f"unknown request type {type_!r}")
    body = obj.get("body", {})
    if not isinstance(body, dict):
        raise _bad(request_id, "request body must be a JSON object")
    return Request(id=request_id, type=type_, body=body)


def _bad(request_id: str, message: str) -> BadRequest:
    error = BadRequest(message)
    error.request_id = request_id  # type: ignore[attr-defined]
    return error


def encode_reply(request_id: str | None, body: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, "id": request_id, "ok": True, "body": body}).encode()


def encode_error(request_id: str | None, error: FlowError | Exception) -> bytes:
    message = str(error).strip() or type(error).__name__
    payload: dict[str, Any] = {
        "v": VERSION,
        "id": request_id,
        "ok": False,
        "error": {"kind": type(error).__name__, "message": message},
    }
    problems = getattr(error, "problems", None)
    if problems:
        payload["error"]["problems"] = list(problems)
    return json.dumps(payload).encode()


def decode_reply(data: bytes) -> dict[str, Any]:
    """Decode a reply; raises ValueError when it is not one."""
    obj = json.loads(data)
    if not isinstance(obj, dict) or "ok" not in obj:
        raise ValueError("not a reply")
    return obj


# Body field helpers: a wrong type is the client's mistake, answered as BadRequest.
def field_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"field {key!r} must be a string")
    return value


def field_optional_str(body: dict[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else field_str(body, key)


def field_float(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadRequest(f"field {key!r} must be a non-negative number")
    return float(value)


def field_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"field {key!r} must be true or false")
    return value
