"""The recorder's writer with a payload that is not Arrow's: that message alone is missed,
the file goes on (an Arrow error used to read as the disk failing and end the file)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc  # pa.ipc is a submodule
from mcap.reader import make_reader

from daemon.model import recording as fmt
from daemon.recorder.writer import McapSink, Received, Tallies, Tally, WriterThread
from node_sdk import wire


def _received(payload: bytes, seq: int) -> Received:
    return Received("n/out", wire.KIND_ARROW, payload, {}, seq, 1, 1_000 + seq, {})


def test_a_stream_arrow_cannot_read_is_missed_and_the_file_goes_on(tmp_path: Path) -> None:
    good = bytes(wire.encode_payload(pa.array(["a", None, "ccc"])).data)
    rng = random.Random(7)
    hostile: list[bytes] = []
    while len(hostile) < 20:  # mutated streams Arrow refuses (OSError, IndexError, ...)
        frame = bytearray(good)
        frame[rng.randrange(len(frame))] = rng.randrange(256)
        try:
            pa.ipc.open_stream(pa.py_buffer(bytes(frame))).schema.field(0)
        except Exception:  # whatever Arrow raises for it
            hostile.append(bytes(frame))
    path = tmp_path / "r.mcap"
    tallies = Tallies({"n/out": Tally()})
    writer = WriterThread(McapSink(str(path), ["n/out"], {"id": "r"}, "nodes: []"), tallies, None)
    writer.start()
    for seq, payload in enumerate([*hostile, good], start=1):
        writer.put(_received(payload, seq))
    writer.close()
    writer.join(10)
    assert not writer.is_alive()
    assert writer.error is None
    assert tallies.as_dict() == {"n/out": {"recorded": 1, "missed": 20}}
    with open(path, "rb") as file:
        messages = [message for _, _, message in make_reader(file).iter_messages()]
    assert [fmt.decode_message(m.data)[2] for m in messages] == [21]
    assert fmt.decode_message(messages[0].data)[0].to_pylist() == ["a", None, "ccc"]
    assert os.stat(path).st_mode & 0o077 == 0
