"""An MCAP file's compressed chunks, checked for a bounded decompression before any is read.

The `mcap` library decompresses a chunk whole, into memory: zstd to the size the chunk
declares, or the size its zstd frame declares when it has one (which wins); lz4 with no
bound at all (it stops at a frame's declared size only after writing everything). A
crafted file of a few KiB can so make a reader use GiBs and minutes. This check
decompresses nothing.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import IO, Any, Final

# flow's recorder writes uncompressed chunks of ~1 MiB (mcap's default chunk_size) closed
# after the message that passes it; an inline message is at most 64 MiB
# (node_sdk.wire.MAX_INLINE_BYTES), base64 in its JSON record ~85.4 MiB, with its metadata
# (at most 1 MiB in the header, MAX_EXTRA_BYTES; JSON escaping grows it a few times at
# worst): such a file compressed by another tool has chunks under ~96 MiB.
MAX_CHUNK_BYTES: Final = 128 << 20
# lz4 writes a run of 255 more output bytes per input byte at most (its length bytes)
LZ4_MAX_RATIO: Final = 256
CHUNK_FIXED: Final = struct.Struct("<QQQII")  # start, end, uncompressed size, crc, name length
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
ZSTD_SIZE_UNKNOWN: Final = (1 << 64) - 1
MAX_COMPRESSION_NAME: Final = 64  # the format's names are `zstd` and `lz4`


class UnboundedChunk(ValueError):
    """A chunk whose decompression would not stay under MAX_CHUNK_BYTES."""


def check_chunks(path: str) -> None:
    """UnboundedChunk (one line, naming the chunk) for the first compressed chunk of `path`
    that may decompress to more than MAX_CHUNK_BYTES. A file that is not MCAP, or is cut,
    is left to the reader to describe.

    Both ways the `mcap` library finds chunks are checked, on the bytes it would read: the
    chunks the summary's indexes point to (the seeking reader's), and the chunk records met
    reading the file in order (the streaming reader's, which flow uses when there is no
    summary or it cannot be read). The second goes through the library's own StreamReader
    with `emit_chunks`, so a record whose fields run past its declared length cannot make
    the check and the reader see different records: it reads the file once, each record in
    memory in turn (never more than the file holds), decompressing nothing."""
    with open(path, "rb") as stream:
        end = os.fstat(stream.fileno()).st_size
        for offset in _indexed_chunks(stream):
            if offset + 9 >= end:
                continue  # nothing there to read (the reader fails on it, decompressing nothing)
            stream.seek(offset + 9)  # where the seeking reader reads the chunk, whatever is there
            fixed = stream.read(CHUNK_FIXED.size)
            if len(fixed) < CHUNK_FIXED.size:
                continue
            _, _, declared, _, name_length = CHUNK_FIXED.unpack(fixed)
            compression = stream.read(min(name_length, MAX_COMPRESSION_NAME + 1))
            if name_length > MAX_COMPRESSION_NAME:
                continue  # not a name the reader knows: it takes such data as it is
            size = int.from_bytes(stream.read(8), "little")
            where = f"at byte {offset} (as the summary indexes it)"
            _refuse(path, where, compression, declared, size, stream.read(18))
        stream.seek(0)
        for number, chunk in enumerate(_streamed_chunks(stream), start=1):
            _refuse(path, f"number {number} of the file", chunk.compression.encode(),
                    chunk.uncompressed_size, len(chunk.data), bytes(chunk.data[:18]))  # fmt: skip


def _indexed_chunks(stream: IO[bytes]) -> list[int]:
    """The offsets of the chunks the summary indexes (none without a readable summary)."""
    from mcap.exceptions import McapError
    from mcap.reader import SeekingReader

    try:
        summary = SeekingReader(stream).get_summary()
    except (OSError, McapError, ValueError, EOFError, KeyError, struct.error):
        return []
    return [index.chunk_start_offset for index in summary.chunk_indexes] if summary else []


def _streamed_chunks(stream: IO[bytes]) -> Iterator[Any]:
    """The chunk records read in order, up to where the file cannot be read further."""
    from mcap.exceptions import McapError
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader

    records = StreamReader(stream, emit_chunks=True, validate_crcs=False).records
    try:
        for record in records:
            if isinstance(record, Chunk):
                yield record
    except (OSError, McapError, ValueError, EOFError, KeyError, struct.error):
        return  # the reader stops there too


def _refuse(path: str, which: str, compression: bytes, declared: int, size: int,
            head: bytes) -> None:  # fmt: skip
    reason = _chunk_reason(compression, declared, size, head)
    if reason is not None:
        raise UnboundedChunk(f"{path}: the chunk {which} {reason}: "
                             "refused before decompressing it")  # fmt: skip


def _chunk_reason(compression: bytes, declared: int, size: int, head: bytes) -> str | None:
    """Why a chunk (its compression, declared uncompressed size, compressed size and first
    bytes) is refused; None when its decompression stays under the bound. Uncompressed
    chunks (flow's own) and unknown names pass: the reader uses their data as it is."""
    if compression not in (b"zstd", b"lz4"):
        return None
    bound = _mib(MAX_CHUNK_BYTES)
    if declared > MAX_CHUNK_BYTES:
        return f"declares {declared} bytes uncompressed, over flow's bound of {bound}"
    if compression == b"lz4":
        if size * LZ4_MAX_RATIO > MAX_CHUNK_BYTES:
            return (f"holds {size} bytes of lz4, which may decompress to "
                    f"{LZ4_MAX_RATIO} times that (lz4 is not bounded by the declared size), "
                    f"over flow's bound of {bound}")  # fmt: skip
        return None
    framed = _zstd_frame_size(head)
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


# what reading a damaged or cut-off file raises (mcap's own errors aside: what its parsers
# let through on bytes they do not expect)
READ_ERRORS: Final = (OSError, ValueError, EOFError, KeyError, struct.error)


def records_to_cut(path: str) -> Iterator[Any]:
    """The records of an MCAP file read in order from its start, up to its first damaged
    one: all a file cut off before its end (its recorder killed) holds, with no summary or
    footer to seek with."""
    from mcap.exceptions import McapError
    from mcap.stream_reader import StreamReader

    with contextlib.suppress(McapError, *READ_ERRORS), open(path, "rb") as stream:
        yield from StreamReader(stream, validate_crcs=False).records
