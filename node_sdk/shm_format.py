"""The shared-memory wire format: a descriptor frame (kind 6) that stands for a payload in
a sender's segment, and the release notices a receiver sends back (node_sdk/shm.py has the
pool, node_sdk/leases.py the receiver's side). A leaf."""

from __future__ import annotations

import struct
from typing import Any, Final

from node_sdk.errors import NodeError

# descriptor: magic, inner kind, segment number, use token, payload size
DESCRIPTOR: Final = struct.Struct("<4sBxxxIIQ")
DESCRIPTOR_MAGIC: Final = b"FLWS"
RELEASE: Final = struct.Struct("<II")  # segment number, use token; a frame holds 1 or more
MAX_NOTICES: Final = 1024  # notices in one release frame (the PULL refuses larger frames)
MAX_TAIL: Final = 4096  # segment name and release endpoint, in a descriptor


def parse_descriptor(frame: Any) -> tuple[int, int, int, int, bytes]:
    """(inner kind, segment number, use, nbytes, tail naming the segment and its sender);
    NodeError for anything that is not a descriptor."""
    try:
        size = len(frame)
        if size <= DESCRIPTOR.size or size > DESCRIPTOR.size + MAX_TAIL:
            raise NodeError(f"shared-memory descriptor of {size} bytes")
        magic, kind, number, use, nbytes = DESCRIPTOR.unpack_from(frame)
        tail = bytes(frame[DESCRIPTOR.size :])
    except (TypeError, struct.error):
        raise NodeError("shared-memory descriptor that is not bytes") from None
    if magic != DESCRIPTOR_MAGIC:
        raise NodeError("shared-memory descriptor with a bad magic")
    return kind, number, use, nbytes, tail
