"""The JSON of a data frame's extra (its metadata, source and type fields), both ways.

msgspec's codec, three to four times faster than the standard library's on a small dict,
wherever its result is the standard library's; the standard library's where it is not:
msgspec writes a NaN or an infinity as `null` (so a caller hands it only finite floats,
`is_finite_flat`) and refuses to read them (so anything it refuses is read again by the
standard library, which also says what is wrong). What either reads is checked as
strictly: one JSON value, nesting bounded, no lone surrogate.

msgspec is imported at its first use, or at `load()`, which `node_sdk.node` calls as it
is imported (so the fork server has it before it forks): a keeper or a CLI that never
reads a frame never pays for the import (10-15 ms).
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import math
from collections.abc import Callable
from typing import Any, Final

from node_sdk.strictjson import lone_surrogate

_FLAT: Final = frozenset({str, int, float, bool, type(None)})  # exact types: the fast path
# msgspec reads an extra this short whole (at most 2048 levels: well under 1 MiB of C
# stack), or one with this few brackets (a flow sender's has three levels, and a pair per
# list in its metadata); any other goes to the standard library (see `loads`)
FAST_BYTES: Final = 4096
MAX_FAST_BRACKETS: Final = 64
_JSON_SPACE: Final = " \t\n\r"


def _refuse(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_encoder() -> Callable[[Any], str]:
    """obj -> compact JSON text: the C encoder made once. `json.dumps` makes one per call,
    which is most of what a small dict costs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    # markers None: no cycle check, the values are flat; the rest are json.dumps's defaults
    chunks = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",",
                  False, False, True)  # fmt: skip
    return lambda obj: "".join(chunks(obj, 0))


_std_encode: Final = _json_encoder()
# the scanner itself: JSONDecoder.decode adds two regex matches for surrounding whitespace
_std_scan: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the argument wrongly
)



def _encode_first(obj: Any) -> bytes:
    load()  # replaces `_fast_encode` by msgspec's
    return _fast_encode(obj)


def _decode_first(data: bytes) -> Any:
    load()  # replaces `_fast_decode` by msgspec's
    return _fast_decode(data)


# msgspec's once `load` made them; until then, stand-ins that call `load` first
_fast_encode: Callable[[Any], bytes] = _encode_first
_fast_decode: Callable[[bytes], Any] = _decode_first
_fast_refusals: tuple[type[BaseException], ...] = (RecursionError,)


def load() -> None:
    """Import msgspec and make its encoder and decoder (once)."""
    global _fast_encode, _fast_decode, _fast_refusals
    if _fast_decode is not _decode_first:
        return
    import msgspec.json  # deferred: see the docstring above

    # the refusals first: a thread that sees the decoder must see what it may raise
    _fast_refusals = (msgspec.MsgspecError, RecursionError)
    _fast_encode = msgspec.json.Encoder().encode
    _fast_decode = msgspec.json.Decoder().decode


def is_finite_flat(mapping: dict[Any, Any]) -> bool:
    """Whether `mapping` has only str keys and values of the exact scalar types, floats
    finite: what `dumps_finite` writes as the standard library would."""
    for key, value in mapping.items():
        if type(key) is not str or type(value) not in _FLAT:
            return False
        if type(value) is float and not math.isfinite(value):
            return False
    return True


def dumps_finite(obj: Any) -> bytes:
    """`obj` as compact UTF-8 JSON, by msgspec: only for values without a NaN or an
    infinity in them (a str with a lone surrogate raises UnicodeEncodeError, as `dumps`)."""
    return _fast_encode(obj)


def dumps(obj: Any) -> bytes:
    """`obj` as compact UTF-8 JSON, by the standard library (NaN and infinities as the
    tokens Python's `json` reads back)."""
    return _std_encode(obj).encode()


def loads(raw: bytes | memoryview) -> Any:
    """The one JSON value in `raw`, read as `json.loads` reads it.

    ValueError when `raw` is not UTF-8, not JSON, more than one value, or holds a lone
    surrogate; RecursionError when nested past the interpreter's limit. Text past
    `FAST_BYTES` with more than `MAX_FAST_BRACKETS` brackets goes to the standard library's
    scanner whole: msgspec takes about 2.5 times its C stack per level of nesting, so under
    a recursion limit a node raised, a hostile frame's nesting could exhaust the C stack
    before either reader stops.
    """
    data = raw if type(raw) is bytes else bytes(raw)
    if len(data) <= FAST_BYTES or data.count(b"[") + data.count(b"{") <= MAX_FAST_BRACKETS:
        try:
            return _fast_decode(data)
        except _fast_refusals:  # NaN or Infinity, or not JSON: the standard library says
            return _std_loads(data)
    return _std_loads(data)


def _std_loads(data: bytes) -> Any:
    """`loads` by the standard library's scanner alone."""
    text = str(data, "utf-8").strip(_JSON_SPACE)  # as msgspec and json.loads, around it
    try:
        value, end = _std_scan(text, 0)
    except StopIteration as exc:  # the scanner's word for "no value at this index"
        raise ValueError(f"Expecting value: char {exc.value}") from None
    if end != len(text):
        raise ValueError(f"more than one JSON value (extra data at char {end})")
    if lone_surrogate(text, value):
        raise ValueError("a string that is not valid Unicode (a lone surrogate)")
    return value
