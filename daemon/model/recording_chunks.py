"""An MCAP file's compressed chunks, checked for a bounded decompression before any is read.

The `mcap` library decompresses a chunk whole, into memory: zstd to the size the chunk
declares, or the size its zstd frame declares when it has one (which wins); lz4 with no
bound at all (it stops at a frame's declared size only after writing everything). A
crafted file of a few KiB can so make a reader use GiBs and minutes. This walk reads only
record headers (seeking over their data), so it costs a few reads a chunk, whatever the
file's size, and decompresses nothing.
"""

from __future__ import annotations

import struct
from typing import IO, Final

# flow's recorder writes uncompressed chunks of ~1 MiB (mcap's default chunk_size) closed
# after the message that passes it; an inline message is at most 64 MiB
# (node_sdk.wire.MAX_INLINE_BYTES), base64 in its JSON record ~85.4 MiB, with its metadata
# (at most 1 MiB in the header, MAX_EXTRA_BYTES; JSON escaping grows it a few times at
# worst): such a file compressed by another tool has chunks under ~96 MiB.
MAX_CHUNK_BYTES: Final = 128 << 20
# lz4 writes a run of 255 more output bytes per input byte at most (its length bytes)
LZ4_MAX_RATIO: Final = 256
MAGIC: Final = b"\x89MCAP0\r\n"
OP_FOOTER: Final = 0x02
OP_CHUNK: Final = 0x06
CHUNK_FIXED: Final = struct.Struct("<QQQII")  # start, end, uncompressed size, crc, name length
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
ZSTD_SIZE_UNKNOWN: Final = (1 << 64) - 1
MAX_COMPRESSION_NAME: Final = 64  # the format's names are `zstd` and `lz4`


class UnboundedChunk(ValueError):
    """A chunk whose decompression would not stay under MAX_CHUNK_BYTES."""


def check_chunks(path: str) -> None:
    """UnboundedChunk (one line, naming the chunk's byte offset) for the first compressed
    chunk of `path` that may decompress to more than MAX_CHUNK_BYTES. A file that is not
    MCAP, or is cut, is left to the reader to describe."""
    with open(path, "rb") as stream:
        if stream.read(len(MAGIC)) != MAGIC:
            return
        offset = len(MAGIC)
        while True:
            head = stream.read(9)
            if len(head) < 9 or head[0] == OP_FOOTER:
                return
            length = int.from_bytes(head[1:], "little")
            if head[0] == OP_CHUNK:
                reason = _chunk_reason(stream, length)
                if reason is not None:
                    raise UnboundedChunk(f"{path}: the chunk at byte {offset} {reason}: "
                                         "refused before decompressing it")  # fmt: skip
            offset += 9 + length
            stream.seek(offset)


def _chunk_reason(stream: IO[bytes], length: int) -> str | None:
    """Why this chunk record (the stream just after its opcode and length) is refused."""
    fixed = stream.read(CHUNK_FIXED.size)
    if len(fixed) < CHUNK_FIXED.size:
        return None  # cut: the reader says so
    _, _, declared, _, name_length = CHUNK_FIXED.unpack(fixed)
    if name_length == 0:
        return None  # uncompressed (flow's own): its data is used as it is in the file
    if name_length > MAX_COMPRESSION_NAME or name_length + CHUNK_FIXED.size + 8 > length:
        return None  # not a name the reader knows: it takes such data as it is too
    compression = stream.read(name_length)
    data_length = int.from_bytes(stream.read(8), "little")
    if compression not in (b"zstd", b"lz4"):
        return None
    bound = _mib(MAX_CHUNK_BYTES)
    if declared > MAX_CHUNK_BYTES:
        return f"declares {declared} bytes uncompressed, over flow's bound of {bound}"
    if compression == b"lz4":
        if data_length * LZ4_MAX_RATIO > MAX_CHUNK_BYTES:
            return (f"holds {data_length} bytes of lz4, which may decompress to "
                    f"{LZ4_MAX_RATIO} times that (lz4 is not bounded by the declared size), "
                    f"over flow's bound of {bound}")  # fmt: skip
        return None
    framed = _zstd_frame_size(stream.read(18))
    if framed is None:
        return "has zstd data that does not start with a zstd frame header"
    if framed != ZSTD_SIZE_UNKNOWN and framed > declared:
        return (f"declares {declared} bytes uncompressed but its zstd frame {framed} "
                "(the frame's size is the one decompressed)")  # fmt: skip
    return None


def _zstd_frame_size(header: bytes) -> int | None:
    """The content size a zstd frame header declares (ZSTD_SIZE_UNKNOWN when it has none);
    None when `header` is not the start of a zstd frame."""
    if len(header) < 6 or header[:4] != ZSTD_MAGIC:
        return None
    descriptor = header[4]
    size_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (single_segment, 2, 4, 8)[size_flag]
    if width == 0:
        return ZSTD_SIZE_UNKNOWN
    if at + width > len(header):
        return None
    size = int.from_bytes(header[at : at + width], "little")
    return size + 256 if width == 2 else size  # the format stores the 2-byte size minus 256


def _mib(count: int) -> str:
    return f"{count >> 20} MiB"
