"""The control protocol's framing, sans-IO: one total decoder, the encoders, the converter.

A request is one JSON object `{"v", "id", "type", "body"}`; a reply is `{"v", "id", "ok",
"body"}` or `{"v", "id", "ok": false, "error": {"kind", "message"}}` (docs/protocol.md).
The bodies are the typed classes of `daemon.model.requests`, shared by the CLI and the
daemon and structured here by one strict cattrs converter.

`decode_request` is total: whatever bytes come in, it returns a request object or raises
one of the layer's two errors, `Garbage` (not a request at all: dropped) or `BadRequest`
(answered). Every input is bounded before or while it is parsed: size, nesting depth,
integer range, float finiteness, string and mapping lengths.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from daemon.errors import BadRequest, FlowError
from daemon.model import requests as rq

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "SOCKET_MAX_MSG_BYTES",
    "VERSION",
    "Decoded",
    "Garbage",
    "MalformedReply",
    "decode_reply",
    "decode_request",
    "encode_error",
    "encode_reply",
    "encode_request",
    "new_request_id",
]

VERSION = 1
MAX_REQUEST_BYTES = 1 << 20
# zmq drops a peer that sends more than this outright; between the two limits we reply.
SOCKET_MAX_MSG_BYTES = 16 << 20
# Our deepest request is 3 levels ({"body": {"env": {}}}); Python's JSON parser recurses
# and raises RecursionError near 1000, so the bound is checked before it runs.
MAX_DEPTH = 16
MAX_ID_CHARS = 64

Reply = TypeVar("Reply")

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class Garbage(Exception):
    """Bytes that are not a request at all: dropped with a log line, never answered."""


class MalformedReply(Exception):
    """Bytes from the daemon that are not a reply this client understands."""


@attrs.frozen
class Decoded:
    """One decoded control request: its id and its typed body."""

    id: str
    body: rq.Request[Any]


def new_request_id() -> str:
    return secrets.token_hex(8)


# --- bounded JSON -------------------------------------------------------------------------


def _too_deep(data: bytes, limit: int) -> bool:
    """Whether brackets nest deeper than `limit`, without recursion (strings ignored).

    Each pass removes the innermost `[]`/`{}` pairs, so `limit` passes remove every
    structure of depth <= limit; a bracket left over is deeper (or unbalanced, which the
    parser would refuse anyway).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRINGS.sub(b'""', data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if shorter == brackets:
            break
        brackets = shorter
    return bool(brackets)


@attrs.frozen
class OutOfRange:
    """A JSON number the protocol does not take (NaN, Infinity, 1e400, 10**30): kept as
    its text so the converter can name the field it was in."""

    text: str

    def __repr__(self) -> str:
        return self.text[:40]


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
    if _too_deep(data, MAX_DEPTH):
        raise Garbage(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=OutOfRange
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Garbage(f"not JSON: {exc}") from None
    except RecursionError:  # not reachable after the depth scan; kept total regardless
        raise Garbage("nested too deep") from None


# --- the converter ------------------------------------------------------------------------


class FieldError(ValueError):
    """A value of the wrong type or out of its bounds; the message says what was expected."""


def _check_str(limit: int, what: str = "a string") -> Any:
    def structure(value: Any, _: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"expected {what}")
        if len(value) > limit:
            raise FieldError(f"longer than {limit} characters")
        return value

    return structure


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("expected true or false")
    return value


def _no_out_of_range(value: Any) -> None:
    if isinstance(value, OutOfRange):
        raise FieldError(f"number {value!r} out of range")


def _structure_int(value: Any, _: Any) -> int:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("expected an integer")
    return value


def _structure_float(value: Any, _: Any) -> float:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("expected a number")
    return float(value)


def _structure_seconds(value: Any, _: Any) -> float:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FieldError("expected a non-negative number")
    if value > rq.MAX_SECONDS:
        raise FieldError(f"expected at most {rq.MAX_SECONDS:g} seconds")
    return float(value)


def _structure_env(value: Any, _: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FieldError("expected a mapping of strings to strings")
    if len(value) > rq.MAX_ENV_ENTRIES:
        raise FieldError(f"more than {rq.MAX_ENV_ENTRIES} entries")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > rq.MAX_NAME_CHARS:
            raise FieldError(f"entry {key[:40]!r}: expected a string to a string")
        if len(item) > rq.MAX_ENV_VALUE_CHARS:
            raise FieldError(f"entry {key[:40]!r}: longer than {rq.MAX_ENV_VALUE_CHARS}")
    return dict(value)


@functools.cache
def converter() -> cattrs.Converter:
    """The strict converter both ends use: no coercion, no extra keys, bounded values.

    Built on first use: `flow run` and the keeper import this module for its constants and
    never pay for cattrs.
    """
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _check_str(rq.MAX_STRING_CHARS))
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(rq.Seconds, _structure_seconds)
    converter.register_structure_hook(rq.Env, _structure_env)
    converter.register_structure_hook(rq.Name, _check_str(rq.MAX_NAME_CHARS))
    converter.register_structure_hook(rq.YamlText, _check_str(rq.MAX_TEXT_CHARS))
    return converter


def _format(exc: BaseException, type_: Any) -> str:
    import cattrs

    if isinstance(exc, FieldError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return (
            "unknown field"
            + ("s " if len(exc.extra_fields) > 1 else " ")
            + ", ".join(repr(k)[:40] for k in sorted(exc.extra_fields))
        )
    return "expected " + getattr(type_, "__name__", str(type_))


def _field_lines(exc: Exception) -> list[str]:
    """cattrs' `msg @ $.grace` lines as `field 'grace': msg` (or `body: msg`)."""
    import cattrs

    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format):
        message, _, where = line.rpartition(" @ ")
        if where.startswith("$.") and "unknown field" not in message:
            lines.append(f"field {where[2:]!r}: {message}")
        else:
            lines.append(f"body: {message}")
    return lines or [f"body: {exc}"]


def structure(data: Any, cls: type[Reply]) -> Reply:
    """`data` as a `cls`; raises BadRequest naming every bad field."""
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    try:
        return converter().structure(data, cls)
    except Exception as exc:  # cattrs' class errors, or any hook's: all about the input
        raise BadRequest("; ".join(_field_lines(exc))) from None


def unstructure(value: Any) -> Any:
    return converter().unstructure(value)


# --- requests -----------------------------------------------------------------------------


def encode_request(body: rq.Request[Any], request_id: str | None = None) -> tuple[str, bytes]:
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
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise _bad(request_id, f"protocol version {version!r:.40} not supported (daemon speaks 1)")
    type_ = obj.get("type")
    cls = rq.REQUESTS.get(type_) if isinstance(type_, str) else None
    if cls is None or (cls.HOOK and not hooks):
        raise _bad(request_id, f"unknown request type {type_!r:.80}")
    extra = set(obj) - {"v", "id", "type", "body"}
    if extra:
        raise _bad(request_id, f"unknown request keys {sorted(extra)!r:.80}")
    try:
        body = structure(obj.get("body", {}), cls)
    except BadRequest as exc:
        raise _bad(request_id, str(exc)) from None
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
