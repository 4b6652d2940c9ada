"""The control protocol's framing, sans-IO: one total decoder, the encoders, the converter.

A request is one JSON object `{"v", "id", "type", "body"}`; a reply is `{"v", "id", "ok",
"body"}` or `{"v", "id", "ok": false, "error": {"kind", "message"}}` (docs/protocol.md).
The bodies are the typed classes of `daemon.model.requests` and `replies`, shared by the
CLI and the daemon and structured by the strict converter of `daemon.model.convert`.

`decode_request` is total: whatever bytes come in, it returns a request object or raises
one of the layer's two errors, `Garbage` (not a request at all: dropped) or `BadRequest`
(answered). Every input is bounded before or while it is parsed: size, nesting depth,
integer range, float finiteness, string and mapping lengths.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, TypeVar

import attrs

from daemon.model.convert import OutOfRange, structure, unstructure
from daemon.model.errors import BadRequest, FlowError
from daemon.model.parts import MAX_REQUEST_BYTES
from daemon.model.requests_base import Request
from node_sdk.strictjson import depth, lone_surrogate

__all__ = [
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "SOCKET_MAX_MSG_BYTES",
    "VERSION",
    "Decoded",
    "ErrorReply",
    "Garbage",
    "MalformedReply",
    "decode_reply",
    "decode_request",
    "encode_error",
    "encode_reply",
    "encode_request",
    "new_request_id",
    "reply_id",
]

VERSION = 1
# zmq drops a peer that sends more than this outright; between the two limits we reply.
SOCKET_MAX_MSG_BYTES = 16 << 20
# Our deepest request is 3 levels ({"body": {"env": {}}}); Python's JSON parser recurses
# and raises RecursionError near 1000, so the bound is checked before it runs.
MAX_DEPTH = 16
MAX_ID_CHARS = 64

Reply = TypeVar("Reply")


class Garbage(Exception):
    """Bytes that are not a request at all: dropped with a log line, never answered."""


class MalformedReply(Exception):
    """Bytes from the daemon that are not a reply this client understands."""


@attrs.frozen
class Decoded:
    """One decoded control request: its id and its typed body."""

    id: str
    body: Request[Any]


def new_request_id() -> str:
    return secrets.token_hex(8)


# --- bounded JSON -------------------------------------------------------------------------


MAX_INT = (1 << 53) - 1  # what every JSON reader represents exactly
MAX_FLOAT = 1e15


def _parse_int(text: str) -> int | OutOfRange:
    if len(text) > 17:  # also keeps int() away from Python's 4300-digit ValueError
        return OutOfRange(text)
    value = int(text)
    return value if -MAX_INT <= value <= MAX_INT else OutOfRange(text)


def _parse_float(text: str) -> float | OutOfRange:
    if len(text) > 64:
        return OutOfRange(text)
    value = float(text)
    return value if -MAX_FLOAT <= value <= MAX_FLOAT else OutOfRange(text)


def _loads(data: bytes) -> Any:
    """JSON with every number bounded; raises Garbage when the bytes are not JSON."""
    if depth(data) > MAX_DEPTH:  # one depth scan for every channel (node_sdk.strictjson)
        raise Garbage(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=OutOfRange
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Garbage(f"not JSON: {exc}") from None
    except RecursionError:  # not reachable after the depth scan; kept total regardless
        raise Garbage("nested too deep") from None


# --- requests -----------------------------------------------------------------------------


def encode_request(body: Request[Any], request_id: str | None = None) -> tuple[str, bytes]:
    """A request frame and its id."""
    request_id = request_id or new_request_id()
    payload = {"v": VERSION, "id": request_id, "type": body.TYPE, "body": unstructure(body)}
    return request_id, json.dumps(payload).encode()


def decode_request(data: bytes, *, hooks: bool = False) -> Decoded:
    """Decode and check a request; raises `Garbage` or `BadRequest` (with `request_id`).

    `hooks` admits the test-only request types (FLOW_TEST_HOOKS=1).
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request too large ({len(data)} bytes, limit {MAX_REQUEST_BYTES})")
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise Garbage("not a JSON object")
    request_id = obj.get("id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_CHARS:
        raise Garbage("no request id")
    if not request_id.isascii():  # our ids are hex; nothing else is echoed back
        raise Garbage("a request id that is not ASCII")
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise _bad(
            request_id, f"protocol version {version!r:.40} not supported (daemon speaks {VERSION})"
        )
    # the registry defines every request class: only the daemon decodes requests, and a
    # `flow` command (which imports this module to encode one) never pays for the rest
    from daemon.model.requests import REQUESTS

    type_ = obj.get("type")
    cls = REQUESTS.get(type_) if isinstance(type_, str) else None
    if cls is None or (cls.HOOK and not hooks):
        raise _bad(request_id, f"unknown request type {type_!r:.80}")
    extra = set(obj) - {"v", "id", "type", "body"}
    if extra:
        raise _bad(request_id, f"unknown request keys {sorted(extra)!r:.80}")
    try:
        body = structure(obj.get("body", {}), cls)
    except BadRequest as exc:
        raise _bad(request_id, str(exc)) from None
    if lone_surrogate(data, obj):  # it would end in a store write or a log line that raises
        raise _bad(request_id, "a string in the request is not valid Unicode (a lone "
                               "surrogate; a path or name that is not UTF-8?)")  # fmt: skip
    return Decoded(id=request_id, body=body)


def _bad(request_id: str, message: str) -> BadRequest:
    error = BadRequest(message)
    error.request_id = request_id  # type: ignore[attr-defined]
    return error


# --- replies ------------------------------------------------------------------------------


def encode_reply(request_id: str | None, body: Any) -> bytes:
    payload = {"v": VERSION, "id": request_id, "ok": True, "body": unstructure(body)}
    return json.dumps(payload).encode()


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


@attrs.frozen
class ErrorReply:
    """The daemon's `ok: false`: the error class name and its one-line (or more) message."""

    kind: str
    message: str


def reply_id(data: bytes) -> str | None:
    """The id a reply answers (None when unattributed); raises MalformedReply."""
    obj = _reply_object(data)
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise MalformedReply("reply id is not a string")
    return request_id


def _reply_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedReply(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedReply("not a JSON object")
    return obj


def decode_reply(data: bytes, cls: type[Reply]) -> Reply | ErrorReply:
    """The typed reply body, or the daemon's error; raises MalformedReply otherwise."""
    obj = _reply_object(data)
    if obj.get("ok") is True:
        try:
            return structure(obj.get("body"), cls)
        except BadRequest as exc:
            raise MalformedReply(f"{cls.__name__}: {exc}") from None
    error = obj.get("error")
    if obj.get("ok") is False and isinstance(error, dict):
        return ErrorReply(
            kind=str(error.get("kind", "Error")), message=str(error.get("message", ""))
        )
    raise MalformedReply(json.dumps(obj)[:200])
