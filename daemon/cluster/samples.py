"""Observed messages relayed over the cluster link: each one bounded, then batched.

A member observes an output of a node it hosts and relays what it sees to the coordinator,
which hands it to the `flow topic echo|hz` there (docs/cluster.md, "Seen from the
coordinator"). A relayed sample is a data frame again, one packed frame, so the CLI reads
it like a local observer's: the same header (kind, generation, seq, the sender's
timestamp), metadata and source, and the payload whole up to SAMPLE_PAYLOAD. A larger
payload, or one in shared memory (which stays on its machine), is *cut*: no payload, and
the extra key `cut` gives its size (`shm` says it was in shared memory). The extra key `rd`
counts the samples the member dropped so far (its queue full, the relay's budget spent, the
link down), so the CLI can say so.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from typing import Final

from node_sdk.errors import NodeError
from node_sdk.shm_format import parse_descriptor
from node_sdk.wire import (
    FLAG_PACKED,
    HEADER,
    HEADER_SIZE,
    KIND_SHM,
    MAGIC,
    pack_header,
    unpack_header,
)

SAMPLE_PAYLOAD: Final = 8 * 1024  # a payload up to this is relayed whole
MAX_SAMPLE: Final = 12 * 1024  # a sample past this (metadata of its own) is dropped, counted
BATCH_BYTES: Final = 24 * 1024  # raw bytes of one `samples` message (base64: 32 KiB < 48)
_LENGTH: Final = struct.Struct("<I")


def reduce(frames: Sequence[bytes], dropped: int) -> tuple[bytes | None, bytes | None]:
    """One observed message -> (its relayed frame or None when it is not one, the shared
    memory descriptor to release or None)."""
    try:
        header = unpack_header(frames[0]) if frames else None
    except NodeError:
        return None, None
    if header is None:
        return None, None
    packed = bool(header.flags & FLAG_PACKED)
    if len(frames) != (1 if packed else 2):
        return None, None
    body = frames[0][HEADER_SIZE + HEADER.unpack_from(frames[0])[-1] :] if packed else frames[1]
    extra = dict(header.extra)
    kind, descriptor = header.kind, None
    if kind == KIND_SHM:
        try:
            kind, _, _, size, _ = parse_descriptor(body)
        except NodeError:
            return None, None
        descriptor, body = body, b""
        extra.update(cut=size, shm=1)
    elif len(body) > SAMPLE_PAYLOAD:
        extra["cut"] = len(body)
        body = b""
    if dropped:
        extra["rd"] = dropped
    text = json.dumps(extra, separators=(",", ":")).encode() if extra else b""
    head = pack_header(kind, header.generation, header.seq, header.timestamp_ns, text,
                       FLAG_PACKED)  # fmt: skip
    sample = head + body
    return (sample if len(sample) <= MAX_SAMPLE else None), descriptor


def shm_descriptor(frames: Sequence[bytes]) -> bytes | None:
    """The shared-memory descriptor of a message, if it is one, read without decoding it
    (a message that is not reduced must still give its segment back)."""
    if len(frames) != 1 or len(frames[0]) < HEADER_SIZE:
        return None
    magic, kind, flags, _, _, _, _, size = HEADER.unpack_from(frames[0])
    if magic != MAGIC or kind != KIND_SHM or not flags & FLAG_PACKED:
        return None
    return frames[0][HEADER_SIZE + size :]


def pack_batch(samples: Sequence[bytes]) -> str:
    """Samples as one `samples` body: length-prefixed frames, base64 (the link is JSON)."""
    raw = b"".join(_LENGTH.pack(len(sample)) + sample for sample in samples)
    return base64.b64encode(raw).decode("ascii")


def unpack_batch(body: str) -> list[bytes]:
    """The samples of one `samples` body; [] for anything that is not one."""
    try:
        raw = base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return []
    samples, at = [], 0
    while at + _LENGTH.size <= len(raw):
        (size,) = _LENGTH.unpack_from(raw, at)
        at += _LENGTH.size
        if size > MAX_SAMPLE or at + size > len(raw):
            return []
        samples.append(raw[at : at + size])
        at += size
    return samples if at == len(raw) else []
