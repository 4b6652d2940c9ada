"""Framing of the node channel and the data plane (docs/protocol.md); pure, no zmq.

Shared by both ends: the SDK sends and receives with it, the keeper sends `send_stdout_as`
lines with `encode_data`. The node channel's messages are in node_sdk/channel.py.
A leaf beside `errors` and `strictjson`: shared-memory payloads (kind 6) are opened by a
reader the caller hands in (node_sdk/leases.py), never by this module.
numpy and pyarrow are imported only when a payload is of their kind: a value of theirs
can only exist once its module is in `sys.modules`, so detection needs no import.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from node_sdk import (
    arrow_batch,
    arrow_buffers,
    arrow_ipc,
    arrow_layout,
    extra_json,
    numpy_payload,
)
from node_sdk.arrow_buffers import BuffersBody
from node_sdk.arrow_ipc import ArrowBody
from node_sdk.errors import NodeError

MAGIC: Final = b"FLW1"
# magic, kind, flags, reserved, generation, seq, timestamp ns, extra length
HEADER: Final = struct.Struct("<4sBBHIQQI")
HEADER_SIZE: Final = HEADER.size  # 32
HEADER_SEQ_AT: Final = struct.calcsize("<4sBBHI")  # the seq's offset: after the generation

# Backpressure edges: the receiver's ROUTER sends a DEALER sender one frame per batch of
# credits (magic, count); a sender sends only while it holds credits.
CREDIT_MAGIC: Final = b"FLWC"
CREDIT: Final = struct.Struct("<4sI")

KIND_NONE: Final = 0
KIND_BYTES: Final = 1
KIND_STR: Final = 2
KIND_NUMPY: Final = 3
KIND_ARROW: Final = 4
KIND_EOS: Final = 5
KIND_SHM: Final = 6  # a shared-memory descriptor (node_sdk/shm.py); the inner kind in it
KIND_ARROW_BUFFERS: Final = 7  # a fixed-width (or struct of them) array's own buffers
ARROW_KINDS: Final = (KIND_ARROW, KIND_ARROW_BUFFERS)
# The extra key of an end-of-stream that ends one generation of its sender, not its stream:
# the sender may be restarted, and only the daemon knows when it has ended for good.
GENERATION_END: Final = {"ge": 1}

# At or above this size a private or immutable payload is sent without a copy, and the
# header's FLAG_LARGE tells the receiver to take it as a zero-copy zmq frame.
ZERO_COPY_MIN: Final = 64 * 1024
FLAG_LARGE: Final = 0x01
# Below ZERO_COPY_MIN the payload follows the extra in the header's own frame: one zmq
# frame instead of two halves the per-message cost on both ends (a zmq call and a
# RCVMORE check each), and copying a few KiB more is cheaper than either.
FLAG_PACKED: Final = 0x02

# A payload sent inline (below the shared-memory threshold, or when no segment is to be
# had) is at most this; the sender refuses a larger one (`MessageTooLarge`). Every input
# socket cuts off a peer whose frame passes MAX_FRAME_BYTES (zmq MAXMSGSIZE), so a rogue
# peer's 1 GiB frame is refused at its size prefix, never allocated.
MAX_INLINE_BYTES: Final = 64 << 20
MAX_EXTRA_BYTES: Final = 1 << 20  # the header's extra (metadata and type fields)
MAX_FRAME_BYTES: Final = HEADER_SIZE + MAX_EXTRA_BYTES + MAX_INLINE_BYTES

_EMPTY: Final = b""
_METADATA_SCALARS: Final = (str, int, float, bool, type(None))


class Payload(NamedTuple):
    """An encoded value: its kind, the bytes to send, and the extra keys it needs.

    A tuple, not a dataclass: one is built per message sent, and tuples are built fastest.
    """

    kind: int
    data: Any  # bytes or any object exposing a contiguous buffer
    fields: dict[str, Any] | None = None  # "dt"/"sh" for numpy
    nbytes: int = 0
    zero_copy_safe: bool = False  # immutable or private to us: zmq may keep a reference


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed part of a data frame's header plus its decoded `extra` keys."""

    kind: int
    flags: int
    generation: int
    seq: int
    timestamp_ns: int
    extra: Mapping[str, Any]


# ---------------------------------------------------------------- metadata and extra


def validate_metadata(metadata: object) -> dict[str, Any]:
    """Check user metadata (str keys; scalars or flat lists of them); NodeError names the key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise NodeError(f"metadata must be a dict, got {type(metadata).__name__}")
    checked: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise NodeError(f"metadata key {key!r} is not a str")
        if isinstance(value, list | tuple):
            for item in value:
                if not isinstance(item, _METADATA_SCALARS):
                    raise NodeError(
                        f"metadata key {key!r}: list item of type {type(item).__name__} "
                        "is not supported (str, int, float, bool, None)"
                    )
            value = list(value)
        elif not isinstance(value, _METADATA_SCALARS):
            raise NodeError(
                f"metadata key {key!r}: value of type {type(value).__name__} is not supported "
                "(str, int, float, bool, None, or lists of those)"
            )
        checked[key] = value
    return checked


def encode_extra(
    source: str | None,
    metadata: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> bytes:
    """The header's variable part: JSON with only the keys that are needed, or nothing."""
    extra: dict[str, Any] = {}
    if metadata:
        extra["m"] = metadata
    if source is not None:
        extra["s"] = source
    if fields:
        extra.update(fields)
    if not extra:
        return _EMPTY
    return extra_json.dumps(extra)


def metadata_extra(source_tail: bytes, metadata: Mapping[str, Any]) -> bytes:
    """`encode_extra(source, metadata)` for a sender that has `source_tail(source)`.

    Flat metadata of exact scalar types and finite floats (nearly all of it) is checked
    with one loop and encoded by msgspec; anything else takes `validate_metadata`, which
    names the key at fault, and the standard library's encoder.
    """
    if type(metadata) is dict and extra_json.is_finite_flat(metadata):
        return b'{"m":' + extra_json.dumps_finite(metadata) + source_tail
    return b'{"m":' + extra_json.dumps(validate_metadata(metadata)) + source_tail


def source_tail(source: str) -> bytes:
    """The end of an extra with metadata: the source key and the closing brace."""
    return b',"s":' + extra_json.dumps(source) + b"}"


def decode_extra(raw: bytes | memoryview) -> dict[str, Any]:
    """The header's variable part back to a dict (empty when absent)."""
    if not raw:
        return {}
    try:
        extra = extra_json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bounded: extra_json.loads says how
        raise NodeError(f"data frame extra is not valid JSON: {exc}") from None
    if type(extra) is not dict:
        raise NodeError("data frame extra is not one JSON object")
    source = extra.get("s")
    if source is not None and type(source) is not str:
        raise NodeError("data frame extra names a source that is not a string")
    return extra


# ---------------------------------------------------------------- header


def pack_header(
    kind: int, generation: int, seq: int, timestamp_ns: int, extra: bytes = _EMPTY, flags: int = 0
) -> bytes:
    """The header frame: 32 fixed bytes then `extra`."""
    return HEADER.pack(MAGIC, kind, flags, 0, generation, seq, timestamp_ns, len(extra)) + extra


def unpack_header(frame: bytes | memoryview) -> Header:
    """Parse a header frame (the payload of a packed one is not read); NodeError, and only
    that, for anything else."""
    if not isinstance(frame, bytes | memoryview | bytearray):
        raise NodeError(f"data frame header of type {type(frame).__name__}")
    if len(frame) < HEADER_SIZE:
        raise NodeError(f"data frame header of {len(frame)} bytes (expected >= {HEADER_SIZE})")
    magic, kind, flags, _, generation, seq, timestamp_ns, size = HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise NodeError(f"data frame with bad magic {bytes(magic)!r}")
    end = HEADER_SIZE + size
    if len(frame) < end or (len(frame) != end and not flags & FLAG_PACKED):
        raise NodeError(f"data frame extra of {len(frame) - HEADER_SIZE} bytes, header says {size}")
    extra = decode_extra(frame[HEADER_SIZE:end])
    return Header(kind, flags, generation, seq, timestamp_ns, extra)


def pack_credit(count: int) -> bytes:
    """A credit frame granting `count` more messages on a backpressure edge."""
    return CREDIT.pack(CREDIT_MAGIC, count)


def unpack_credit(frame: bytes) -> int:
    """The count of a credit frame; 0 for anything that is not one."""
    if len(frame) != CREDIT.size:
        return 0
    magic, count = CREDIT.unpack(frame)
    return int(count) if magic == CREDIT_MAGIC else 0


# ---------------------------------------------------------------- payload


def encode_payload(data: object, deferred: bool = False) -> Payload:
    """A value -> its kind and bytes; NodeError naming the type when it cannot be sent.

    `deferred`: an arrow payload's bytes are a `DEFERRED_BODIES` one, written where they go
    (`write_payload`, `inline_body`) instead of into a buffer of their own first."""
    if data is None:
        return Payload(KIND_NONE, _EMPTY)
    kind_of = type(data)
    if kind_of is bytes:
        return Payload(KIND_BYTES, data, None, len(data), True)  # type: ignore[arg-type]
    if kind_of is str:
        raw = data.encode()  # type: ignore[attr-defined]
        return Payload(KIND_STR, raw, None, len(raw), True)
    module = kind_of.__module__
    if module.startswith("numpy"):
        np = sys.modules.get("numpy")
        if np is not None and isinstance(data, np.ndarray | np.generic):
            return _encode_numpy(np, data)
    elif module.startswith("pyarrow"):
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(data, pa.Array):  # one class: a union checks slower
            return _encode_arrow(pa, data, deferred)
        if pa is not None and isinstance(data, pa.ChunkedArray):
            return _encode_arrow(pa, data.combine_chunks(), deferred)
    if isinstance(data, str):  # a str subclass
        raw = str(data).encode()
        return Payload(KIND_STR, raw, None, len(raw), True)
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise NodeError(
            f"cannot send a value of type {kind_of.__module__}.{kind_of.__qualname__}: send "
            "None, bytes-like, str, a numpy array or a pyarrow Array"
        ) from None
    if view.c_contiguous:
        view = view.cast("B") if view.ndim != 1 or view.format != "B" else view
        return Payload(KIND_BYTES, view, None, view.nbytes, view.readonly)
    raw = view.tobytes()  # a non-contiguous view: one copy makes it sendable
    return Payload(KIND_BYTES, raw, None, len(raw), True)


def encode_arrow_array(array: Any) -> tuple[int, Any, int]:
    """What `encode_payload(array, deferred=True)` gives of a pyarrow Array whose class a
    sender has seen `encode_payload` take (its type checks are not made again), as (kind,
    the body not joined, its size): a sender's hot path, which builds no Payload."""
    return _arrow_parts(sys.modules["pyarrow"], array)


def _encode_arrow(pa: Any, array: Any, deferred: bool) -> Payload:
    kind, body, nbytes = _arrow_parts(pa, array)
    return Payload(kind, body if deferred else body.join(), None, nbytes, True)


def _arrow_parts(pa: Any, array: Any) -> tuple[int, Any, int]:
    """A pyarrow Array -> (kind, its body not joined, the body's size)."""
    layout = arrow_layout.of(pa, array.type)
    if layout.batches is not None:  # a struct of byte-wide fields: the batch flow writes
        written = arrow_batch.encode(array, layout)
        if written is not None:
            return KIND_ARROW, written, written.nbytes
    if layout.width or layout.fields:  # a fixed-width type or a struct of them: its buffers
        fast = arrow_buffers.encode(array, layout)
        if fast is not None:
            return KIND_ARROW_BUFFERS, fast, fast.nbytes
    body = arrow_ipc.encode(pa, array, layout)
    return KIND_ARROW, body, body.nbytes


def _encode_numpy(np: Any, array: Any) -> Payload:
    array = np.asarray(array)
    dtype = array.dtype
    if dtype.hasobject or dtype.fields is not None:
        raise NodeError(
            f"cannot send a numpy array of dtype {dtype}: object and structured dtypes have "
            "no raw layout (use a pyarrow array)"
        )
    private = False
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
        private = True
    flat = array.reshape(-1).view(np.uint8)  # a byte view that any dtype allows
    fields = {"dt": dtype.str, "sh": list(array.shape)}
    return Payload(KIND_NUMPY, flat, fields, flat.nbytes, private or not array.flags.writeable)


# the bodies `encode_payload(deferred=True)` may give: written where they go, or joined
DEFERRED_BODIES: Final = (ArrowBody, BuffersBody)


def write_payload(target: Any, body: Any, nbytes: int) -> Any:
    """Write an encoded payload into `target` (a segment): the one copy of its bytes. What
    a receiver without the segment is sent: `body`, or `target` when only it holds them."""
    if type(body) in DEFERRED_BODIES:
        body.write_into(memoryview(target)[:nbytes])
        return target  # the stream is in the segment only
    target[:nbytes] = body
    return body


def decode_payload(kind: int, data: Any, extra: Mapping[str, Any]) -> Any:
    """Bytes of a payload frame -> the value; read-only views, no copy."""
    if kind == KIND_BYTES:
        return memoryview(data).toreadonly()
    if kind == KIND_NONE:
        return None
    if kind == KIND_STR:
        try:
            return str(memoryview(data), "utf-8")
        except UnicodeDecodeError as exc:
            raise NodeError(f"str payload that is not UTF-8: {exc}") from None
    if kind == KIND_NUMPY:
        return numpy_payload.decode(data, extra)
    if kind == KIND_ARROW_BUFFERS:
        return arrow_buffers.decode(data)
    if kind == KIND_ARROW:
        return arrow_ipc.decode(data)
    raise NodeError(f"data frame of unknown kind {kind}")
