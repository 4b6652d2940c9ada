"""Whole data messages: encoded for the keeper's `send_stdout_as`, decoded by observers
(`flow topic echo`) and tests. The node's own hot path does not use these (node_sdk/send.py
and node_sdk/inputs.py frame by hand).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from node_sdk.errors import NodeError
from node_sdk.wire import (
    FLAG_LARGE,
    FLAG_PACKED,
    GENERATION_END,
    HEADER,
    HEADER_SEQ_AT,
    HEADER_SIZE,
    KIND_EOS,
    KIND_SHM,
    ZERO_COPY_MIN,
    Header,
    decode_payload,
    encode_extra,
    encode_payload,
    pack_header,
    unpack_header,
    validate_metadata,
)

_EMPTY = b""
_EXTRA_LEN = struct.Struct("<I")  # the header's last field: the length of its extra


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A whole data frame decoded: what the daemon or a test reads off a PULL socket."""

    header: Header
    source: str | None
    metadata: dict[str, Any]
    value: Any


def encode_data(
    value: object,
    *,
    source: str | None,
    generation: int,
    seq: int,
    timestamp_ns: int,
    metadata: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The frames of one value (the daemon uses it for `send_stdout_as`): one packed frame
    below ZERO_COPY_MIN, else `[header, payload]`."""
    payload = encode_payload(value)
    extra = encode_extra(source, validate_metadata(metadata), payload.fields)
    if payload.nbytes < ZERO_COPY_MIN:
        header = pack_header(payload.kind, generation, seq, timestamp_ns, extra, FLAG_PACKED)
        return [b"".join((header, payload.data))]
    header = pack_header(payload.kind, generation, seq, timestamp_ns, extra, FLAG_LARGE)
    return [header, payload.data]


def payload_bytes(frames: Sequence[Any]) -> int:
    """The payload's size in the frames `encode_data` made: what follows the header and
    its extra (the `bytes` an output's statistics count)."""
    if len(frames) > 1:  # `[header and extra, payload]`
        return memoryview(frames[1]).nbytes
    (extra_len,) = _EXTRA_LEN.unpack_from(frames[0], HEADER_SIZE - _EXTRA_LEN.size)
    return len(frames[0]) - HEADER_SIZE - int(extra_len)


def with_seq(frames: list[Any], seq: int) -> list[Any]:
    """The same message numbered `seq`, for an edge that numbers its messages from its own
    start (the keeper's live edges): the first frame, which begins with the header, copied."""
    first = bytearray(frames[0])
    struct.pack_into("<Q", first, HEADER_SEQ_AT, seq)
    return [first, *frames[1:]]


def encode_eos(
    source: str | None,
    generation: int,
    last_seq: int,
    timestamp_ns: int = 0,
    *,
    generation_end: bool = False,
) -> list[Any]:
    """The end-of-stream frames of one edge: kind 5, seq = the last seq sent.

    `generation_end`: only this generation of the sender ends; it may come back (a restart),
    so the receiver keeps the input open (extra key `ge`, docs/protocol.md).
    """
    extra = encode_extra(source, None, GENERATION_END if generation_end else None)
    return [pack_header(KIND_EOS, generation, last_seq, timestamp_ns, extra), _EMPTY]


class OpenShared(Protocol):
    """What opens a shared-memory payload: `leases.ShmReader.open_payload`."""

    def __call__(
        self, frame: Any, extra: Mapping[str, Any], decode: Callable[..., Any], /
    ) -> Any: ...


def decode_data(frames: Sequence[Any], open_shared: OpenShared | None = None) -> DataMessage:
    """`[header, payload]` or one packed frame -> a `DataMessage` (None for end-of-stream).

    A shared-memory payload needs `open_shared`; without it, NodeError says so."""
    header = unpack_header(frames[0]) if frames else None
    packed = header is not None and header.flags & FLAG_PACKED
    if header is None or len(frames) != (1 if packed else 2):
        raise NodeError(f"data message of {len(frames)} frames (expected 2, or 1 packed)")
    if packed:
        size = HEADER.unpack_from(frames[0])[-1]
        body = memoryview(frames[0])[HEADER_SIZE + size :]
    else:
        body = frames[1]
    metadata = dict(header.extra.get("m") or {})
    source = header.extra.get("s")
    if header.kind == KIND_EOS:
        value = None
    elif header.kind == KIND_SHM:
        if open_shared is None:
            raise NodeError("a shared-memory payload, and no reader for it")
        value = open_shared(body, header.extra, decode_payload)
    else:
        value = decode_payload(header.kind, body, header.extra)
    return DataMessage(header, source, metadata, value)
