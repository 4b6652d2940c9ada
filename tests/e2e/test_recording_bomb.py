"""A recording with a decompression bomb (a small zstd chunk that declares, and really
decompresses to, more than flow's chunk bound) is refused in one line by `flow replay`
before anything of it is decompressed; real recordings, compressed or not, still play."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import zstandard
from helpers import KINDS, flow, flow_run_ok, kinds_graph
from mcap.reader import make_reader
from mcap.records import Chunk
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from daemon.model.recording_chunks import MAX_CHUNK_BYTES

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed
COUNT = 5
GRAPH = kinds_graph(COUNT, 100)


def _record(op: int, body: bytes) -> bytes:
    return bytes([op]) + struct.pack("<Q", len(body)) + body


def _text(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def _bomb(path: Path, size: int) -> None:
    """An unfinished MCAP file: a header, a zstd chunk of `size` bytes once decompressed
    (one record of an unknown opcode the reader skips, so the file reads as valid), then
    the dataflow attachment and a channel with one message for `src/text` after it."""
    compressor = zstandard.ZstdCompressor().compressobj()  # no content size in the frame
    parts = [compressor.compress(b"\x80" + struct.pack("<Q", size - 9))]
    zeros = b"\0" * (1 << 20)
    left = size - 9
    while left > 0:
        parts.append(compressor.compress(zeros[: min(left, len(zeros))]))
        left -= len(zeros)
    parts.append(compressor.flush())
    data = b"".join(parts)
    chunk = struct.pack("<QQQI", 0, 0, size, 0) + _text(b"zstd") + struct.pack("<Q", len(data))
    channel = struct.pack("<HH", 1, 0) + _text(b"src/text") + _text(b"json") + struct.pack("<I", 0)
    message = struct.pack("<HIQQ", 1, 1, 1, 1) + b'{"kind":"str","value":"x"}'
    attachment = (struct.pack("<QQ", 0, 0) + _text(b"dataflow.yml")
                  + _text(b"application/yaml") + struct.pack("<Q", len(GRAPH)) + GRAPH.encode()
                  + struct.pack("<I", 0))  # fmt: skip
    path.write_bytes(b"\x89MCAP0\r\n" + _record(1, _text(b"flow") + _text(b"x"))
                     + _record(6, chunk + data) + _record(4, channel)
                     + _record(5, message) + _record(9, attachment))  # fmt: skip


def test_a_chunk_bomb_is_refused_in_one_line_before_anything_runs(
    flow_home: Path, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.mcap"
    _bomb(bomb, MAX_CHUNK_BYTES + (1 << 20))
    assert bomb.stat().st_size < 64 << 10  # a small file that claims more than the bound
    for args in (("--info",), ("--replace", "src")):
        done = flow("replay", str(bomb), *args, home=flow_home, timeout=BOUND_S)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        claimed = MAX_CHUNK_BYTES + (1 << 20)
        assert f"{bomb}: the chunk number 1 of the file declares {claimed} bytes uncompressed, " \
            "over flow's bound of 128 MiB" in done.stderr  # fmt: skip
        assert "refused before decompressing it" in done.stderr
        assert done.stdout == ""  # no run: nothing started, nothing printed
    assert not list((flow_home).rglob("*.mcap"))  # nor any recorder or player file left


def test_recordings_still_play_and_a_zstd_copy_of_one_too(flow_home: Path, tmp_path: Path) -> None:
    """A real recording (uncompressed chunks, flow's own) and the same file rewritten with
    zstd chunks (another tool's way) both pass the check: --info lists them, replay works."""
    yml = tmp_path / "g.yml"
    yml.write_text(GRAPH)
    rec = tmp_path / "run.mcap"
    flow_run_ok(flow_home, yml, "--record", str(rec), timeout=BOUND_S)
    packed = tmp_path / "zstd.mcap"
    with open(rec, "rb") as source, open(packed, "wb") as target:
        reader = make_reader(source)
        writer = Writer(target, compression=CompressionType.ZSTD, chunk_size=4096)
        writer.start(profile="flow", library="test")
        channels: dict[int, int] = {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if channel.id not in channels:
                schema_id = writer.register_schema(schema.name, schema.encoding, schema.data)
                channels[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding, schema_id
                )
            writer.add_message(channels[channel.id], message.log_time, message.data,
                               message.publish_time, message.sequence)  # fmt: skip
        for attachment in reader.iter_attachments():
            writer.add_attachment(attachment.create_time, attachment.log_time, attachment.name,
                                  attachment.media_type, attachment.data)  # fmt: skip
        for metadata in reader.iter_metadata():
            writer.add_metadata(metadata.name, metadata.metadata)
        writer.finish()  # type: ignore[no-untyped-call]
    with open(packed, "rb") as stream:
        chunks = [r for r in StreamReader(stream, emit_chunks=True).records if isinstance(r, Chunk)]
    assert chunks
    assert {c.compression for c in chunks} == {"zstd"}
    for path in (rec, packed):
        info = flow("replay", str(path), "--info", home=flow_home)
        assert info.returncode == 0, info.stderr
        assert re.search(rf"src/text\s+{COUNT}\b", info.stdout), info.stdout
        replay = flow("replay", str(path), "--replace", "src", "--speed", "4", home=flow_home,
                      timeout=BOUND_S)  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert f"replayed {len(KINDS) * COUNT} messages of src" in replay.stdout
