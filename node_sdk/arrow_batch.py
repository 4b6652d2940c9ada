"""The common struct payload (a struct of fixed-width fields, no nulls, whole buffers) as an
Arrow IPC stream (kind 4) whose record batch message flow writes itself.

Such a batch's message depends on the struct's length only: its field nodes are
(length, 0 nulls) and its buffers the fields' data, each padded to 8 bytes. So the
sender writes the message once per layout and length (Arrow's flatbuffer format, with a
fixed table layout, below) and sends each struct as that message and the fields' own
buffers, with no pyarrow call per message; the receiver reads it with Arrow's IPC reader
(`pa.ipc.read_record_batch`), which rebuilds a struct in half the time of kind 7's three
`Array.from_buffers` (docs/performance.md). Anything else (nulls, slices, bool fields,
more than 16 KiB of values) keeps kind 7 (arrow_buffers). The flatbuffers package would
build the same bytes at Python speed per field, which is what a template avoids. Over
`arrow_layout`.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from node_sdk.arrow_buffers import BuffersBody
from node_sdk.arrow_layout import PAD, Layout

EOS: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # an Arrow IPC stream's end marker
# a larger struct keeps kind 7: its per-message cost is small beside its bytes, and a
# receiver reads kind 7 out of a shared-memory segment without a copy, where a kind 4
# stream is copied out before it is validated (node_sdk/leases.py)
MAX_DATA_BYTES: Final = 16 << 10
# batch messages remembered per layout, one per struct length (about 48 bytes a field):
# a node sending a varying number of rows (detections per frame) meets each length again
MAX_LENGTHS: Final = 256
_PREFIX: Final = struct.Struct("<Ii")  # continuation marker, flatbuffer length
_METADATA_V5: Final = 4  # Arrow's MetadataVersion.V5
_RECORD_BATCH: Final = 3  # MessageHeader.RecordBatch

# The flatbuffer, at offsets from its start (every table and vector at the alignment its
# scalars need; each uoffset points forward, as flatbuffers requires):
#   0  root uoffset -> the Message table
#   4  Message vtable: size 12, table size 20, version@16 header_type@18 header@4 bodyLength@8
#  16  RecordBatch vtable: size 10, table size 20, length@8 nodes@4 buffers@16
#  32  Message table: soffset to its vtable, header uoffset, bodyLength, version, header_type
#  56  RecordBatch table: soffset, nodes uoffset, length, buffers uoffset
#  84  nodes: count, then (length, null count) pairs from 88; 4 bytes of padding; buffers:
#      count, then (offset, length) pairs (each vector's pairs 8-aligned, as Arrow's own
#      writer places them and strict flatbuffer verifiers, nanoarrow's, require)
_MESSAGE_VTABLE: Final = (4, struct.Struct("<HHHHHH"), (12, 20, 16, 18, 4, 8))
_BATCH_VTABLE: Final = (16, struct.Struct("<HHHHH"), (10, 20, 8, 4, 16))
_MESSAGE_AT: Final = 32
_BATCH_AT: Final = 56
_NODES_AT: Final = 84
_MESSAGE: Final = struct.Struct("<iIqhB")
_BATCH: Final = struct.Struct("<iIqI")
_COUNT: Final = struct.Struct("<I")
_PAIR: Final = struct.Struct("<qq")


def batch_message(length: int, widths: tuple[int, ...]) -> bytes:
    """The IPC record batch message (continuation, length, flatbuffer, padding) of a
    struct of `length` rows without nulls whose fields have these bit widths (each >= 8)."""
    nodes = [(length, 0)] * (1 + len(widths))
    buffers = [(0, 0)]  # the struct's own bitmap: none
    body = 0
    for width in widths:
        size = length * (width >> 3)
        buffers += [(body, 0), (body, size)]  # the field's bitmap (none) and its data
        body += size + ((-size) & 7)
    buffers_at = _NODES_AT + 4 + 16 * len(nodes) + 4  # its count, then pairs 8-aligned
    end = buffers_at + 4 + 16 * len(buffers)
    flat = bytearray(end + ((-end) & 7))
    _COUNT.pack_into(flat, 0, _MESSAGE_AT)
    for at, layout, values in (_MESSAGE_VTABLE, _BATCH_VTABLE):
        layout.pack_into(flat, at, *values)
    _MESSAGE.pack_into(flat, _MESSAGE_AT, _MESSAGE_AT - _MESSAGE_VTABLE[0],
                       _BATCH_AT - (_MESSAGE_AT + 4), body, _METADATA_V5,
                       _RECORD_BATCH)  # fmt: skip
    _BATCH.pack_into(flat, _BATCH_AT, _BATCH_AT - _BATCH_VTABLE[0], _NODES_AT - (_BATCH_AT + 4),
                     length, buffers_at - (_BATCH_AT + 16))  # fmt: skip
    for at, pairs in ((_NODES_AT, nodes), (buffers_at, buffers)):
        _COUNT.pack_into(flat, at, len(pairs))
        for index, pair in enumerate(pairs):
            _PAIR.pack_into(flat, at + 4 + 16 * index, *pair)
    return _PREFIX.pack(0xFFFF_FFFF, len(flat)) + bytes(flat)


def encode(array: Any, layout: Layout) -> BuffersBody | None:
    """A struct array of `layout` (`layout.batches` set) -> its stream as kind 4, not joined
    yet; None unless it is whole, without nulls and at most MAX_DATA_BYTES of values (kind 7
    carries it then)."""
    length = len(array)
    if array.null_count or array.offset or length * layout.row_bits > MAX_DATA_BYTES * 8:
        return None
    raw = array.buffers()  # the struct's bitmap, then each field's bitmap and data
    pieces: list[Any] = [layout.schema_message, None]
    nbytes = 0
    index = 1
    for width in layout.fields:
        data = raw[index + 1]
        size = length * (width >> 3)
        # a field with a bitmap, or whose buffer is not exactly its values (a field
        # sliced inside the struct: its offset is not 0), goes as kind 7
        if raw[index] is not None or data is None or data.size != size:
            return None
        pad = (-size) & 7
        pieces += (data, PAD[pad]) if pad else (data,)
        nbytes += size + pad
        index += 2
    batches = layout.batches
    assert batches is not None  # the caller's check
    message = batches.get(length)
    if message is None:
        if len(batches) >= MAX_LENGTHS:
            batches.clear()
        message = batches[length] = batch_message(length, layout.fields)
    pieces[1] = message
    pieces.append(EOS)
    return BuffersBody(pieces, layout.schema_message.size + len(message) + nbytes + 8)
