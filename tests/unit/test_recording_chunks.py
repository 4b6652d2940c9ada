"""The chunk check before an MCAP file is read (daemon/model/recording_chunks.py): the ways a
small compressed chunk can decompress past flow's bound, each refused without decompressing;
the player refuses such a file by itself too."""

from __future__ import annotations

import struct
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from daemon.model import recording_chunks as chunks
from daemon.model.recording_chunks import UnboundedChunk, check_chunks
from daemon.recorder.player import recorded

MAGIC = b"\x89MCAP0\r\n"


def _text(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def _record(op: int, body: bytes) -> bytes:
    return bytes([op]) + struct.pack("<Q", len(body)) + body


def _file(path: Path, compression: bytes, declared: int, data: bytes) -> Path:
    """A header, then one chunk record, then a footer (so the walk ends on it)."""
    header = _record(1, _text(b"") + _text(b"x"))
    body = struct.pack("<QQQI", 0, 0, declared, 0) + _text(compression)
    body += struct.pack("<Q", len(data)) + data
    path.write_bytes(MAGIC + header + _record(6, body) + _record(2, bytes(20)) + MAGIC)
    return path


def test_a_zstd_frame_that_declares_more_than_its_chunk_is_refused(tmp_path: Path) -> None:
    """zstandard decompresses to the frame's own size, not the chunk's: 4 MiB of zeros in a
    frame that says so, in a chunk that says 1 KiB."""
    frame = zstandard.ZstdCompressor().compress(bytes(4 << 20))
    path = _file(tmp_path / "lie.mcap", b"zstd", 1024, frame)
    with pytest.raises(UnboundedChunk, match="but its zstd frame 4194304"):
        check_chunks(str(path))


def test_an_lz4_chunk_is_bounded_by_its_compressed_size(tmp_path: Path) -> None:
    """lz4 ignores the declared size: a chunk whose lz4 data could grow past the bound is
    refused, a small one (the ratio times its size under the bound) passes."""
    small = lz4.frame.compress(b"hello" * 100)
    check_chunks(str(_file(tmp_path / "ok.mcap", b"lz4", 500, small)))
    large = bytes(chunks.MAX_CHUNK_BYTES // chunks.LZ4_MAX_RATIO + 1)  # its size alone decides
    path = _file(tmp_path / "lz4.mcap", b"lz4", 1024, large)
    with pytest.raises(UnboundedChunk, match="bytes of lz4, which may decompress to 256 times"):
        check_chunks(str(path))


def test_honest_and_uncompressed_chunks_pass(tmp_path: Path) -> None:
    frame = zstandard.ZstdCompressor().compress(bytes(1 << 20))
    check_chunks(str(_file(tmp_path / "z.mcap", b"zstd", 1 << 20, frame)))
    # uncompressed: its data is used as the file holds it, whatever it declares
    check_chunks(str(_file(tmp_path / "raw.mcap", b"", 1 << 40, b"\x80" + bytes(8))))
    (tmp_path / "short.mcap").write_bytes(MAGIC + b"\x06\xff")  # cut: the reader says so
    check_chunks(str(tmp_path / "short.mcap"))


def test_the_player_refuses_a_bomb_by_itself(tmp_path: Path) -> None:
    """Run on its own (or given a file changed after `flow replay` checked it)."""
    path = _file(tmp_path / "bomb.mcap", b"zstd", chunks.MAX_CHUNK_BYTES + 1, b"\x28\xb5\x2f\xfd")
    with pytest.raises(UnboundedChunk, match="over flow's bound of 128 MiB"):
        next(recorded(str(path), "src", ["text"]))


def test_a_bomb_the_summary_points_into_an_attachment_is_refused(tmp_path: Path) -> None:
    """The seeking reader reads a chunk where the summary's index says, whatever record
    is there: a bomb hidden in an attachment's data (no chunk in file order) is refused."""
    from mcap.data_stream import RecordBuilder
    from mcap.records import Attachment, ChunkIndex, DataEnd, Footer, Header

    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(4096))
    hidden = _record(6, struct.pack("<QQQI", 0, 0, chunks.MAX_CHUNK_BYTES + 1, 0)
                     + _text(b"zstd") + struct.pack("<Q", len(frame)) + frame)  # fmt: skip
    builder = RecordBuilder()
    builder.write(MAGIC)
    Header(profile="", library="x").write(builder)
    at = builder.count + 1 + 8 + 8 + 8 + 4 + 1 + 4 + 1 + 8  # the attachment's data
    Attachment(create_time=0, log_time=0, name="a", media_type="b", data=hidden).write(builder)
    DataEnd(data_section_crc=0).write(builder)
    summary_start = builder.count
    ChunkIndex(message_start_time=0, message_end_time=0, chunk_start_offset=at,
               chunk_length=len(hidden), message_index_offsets={}, message_index_length=0,
               compression="zstd", compressed_size=len(frame),
               uncompressed_size=4096).write(builder)  # fmt: skip
    Footer(summary_start=summary_start, summary_offset_start=0, summary_crc=0).write(builder)
    builder.write(MAGIC)
    path = tmp_path / "hidden.mcap"
    path.write_bytes(builder.end())
    assert path.read_bytes()[at : at + len(hidden)] == hidden
    with pytest.raises(UnboundedChunk, match=f"chunk at byte {at} \\(as the summary indexes"):
        check_chunks(str(path))
