"""Arrow payloads of a fixed-width type (kind 7): the array's own buffers, no IPC batch.

An array of integers, floats, bool, temporal values, decimals or fixed-size binary
travels as its validity bitmap and data buffer behind a fixed table (length, null count,
offset, buffer sizes) and the Arrow IPC schema message of its type (the one kind 4 sends),
made once per type by the sender (arrow_layout) and parsed once per schema by the
receiver; the receiver rebuilds the array with `Array.from_buffers` over the frame,
without a copy (docs/protocol.md, "Data frames"). Every size is checked against the type
before a buffer is touched: a frame that does not add up is a NodeError. Anything else
(strings, lists, structs, dictionaries...) keeps the Arrow IPC stream (arrow_ipc): a
struct rebuilt field by field costs more than IPC's one `read_record_batch`
(docs/performance.md). pyarrow is imported only by a node whose values are of it. Beside
`arrow_ipc`, over `arrow_layout`.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from node_sdk.arrow_layout import PAD, Layout, bit_width
from node_sdk.errors import NodeError

# schema message length, reserved (0), length, null count, offset, validity size, data size
TABLE: Final = struct.Struct("<IIqqqQQ")
ABSENT: Final = 0xFFFF_FFFF_FFFF_FFFF  # the size of a validity bitmap not sent (no nulls)
MAX_LAYOUTS: Final = 64  # schema messages the receiver remembers


class BuffersBody:
    """A payload of this kind not joined yet: its pieces, written where they go (into a
    shared-memory segment: the one copy of the data), or joined for an inline send."""

    __slots__ = ("nbytes", "pieces")

    def __init__(self, pieces: list[Any], nbytes: int) -> None:
        self.pieces = pieces
        self.nbytes = nbytes

    def join(self) -> bytes:
        return b"".join(self.pieces)

    def write_into(self, target: Any) -> None:
        """Write the payload into `target`, a writable buffer of exactly `nbytes`."""
        view = memoryview(target).cast("B")
        at = 0
        for piece in self.pieces:
            part = memoryview(piece).cast("B")
            view[at : at + part.nbytes] = part
            at += part.nbytes
        if at != self.nbytes:  # never: the sizes are ours
            raise NodeError(f"arrow payload of {at} bytes, {self.nbytes} expected")


def encode(array: Any, layout: Layout) -> BuffersBody:
    """A pyarrow Array of a fixed-width type (`layout.width` not 0) -> its buffers as a
    payload of this kind."""
    schema, width = layout.buffers_schema, layout.width
    length, offset, nulls = len(array), array.offset, array.null_count
    raw = array.buffers()
    # keep only the offset's bits below a byte (bitmaps then need no shift) and send the
    # bytes from there: a slice of a large array sends only what it holds
    shift = offset & 7 if nulls or width == 1 else 0
    start, end = offset - shift, offset + length
    pieces: list[Any] = [None, schema]
    validity_size = ABSENT
    nbytes = TABLE.size + len(schema)
    if nulls:
        validity = raw[0].slice(start >> 3, ((end + 7) >> 3) - (start >> 3))
        validity_size = len(validity)
        pieces.append(validity)
        pad = (-validity_size) & 7
        if pad:
            pieces.append(PAD[pad])
        nbytes += validity_size + pad
    data = raw[1]
    if data is None:  # an empty array may have no data buffer at all
        data = b""
    elif width == 1:
        data = data.slice(start >> 3, ((end + 7) >> 3) - (start >> 3))
    else:
        step = width >> 3
        data = data.slice(start * step, (end - start) * step)
    data_size = len(data)
    pieces.append(data)
    pad = (-data_size) & 7
    if pad:
        pieces.append(PAD[pad])
    nbytes += data_size + pad
    pieces[0] = TABLE.pack(len(schema), 0, length, nulls, shift, validity_size, data_size)
    return BuffersBody(pieces, nbytes)


# receiver: schema message -> (type, bit width)
_READ: dict[bytes, tuple[Any, int]] = {}


def decode(data: Any) -> Any:
    """A payload of this kind -> the array, over `data`'s own memory (no copy). NodeError
    for a payload whose sizes do not add up to its type's buffers."""
    view = memoryview(data).cast("B")
    total = view.nbytes
    if total < TABLE.size:
        raise NodeError(f"arrow buffers payload of {total} bytes")
    schema_size, _, length, nulls, offset, validity_size, data_size = TABLE.unpack_from(view)
    at = TABLE.size + schema_size
    if at > total:
        raise NodeError(f"arrow buffers payload of {total} bytes, schema of {schema_size}")
    key = bytes(view[TABLE.size : at])
    layout = _READ.get(key)
    if layout is None:
        layout = _parse(key)
    arrow_type, width = layout
    if length < 0 or not 0 <= nulls <= length or not 0 <= offset < 8:
        raise NodeError(f"arrow buffers payload: {length} values, {nulls} null, at {offset}")
    bitmap = (offset + length + 7) >> 3
    expected = bitmap if width == 1 else (offset + length) * (width >> 3)
    if data_size != expected or validity_size != (bitmap if nulls else ABSENT):
        raise NodeError(
            f"arrow buffers payload: buffers of {validity_size} and {data_size} bytes for "
            f"{length} values of {arrow_type} at {offset}"
        )
    at += (-schema_size) & 7
    data_at = at + (validity_size + ((-validity_size) & 7) if nulls else 0)
    end = data_at + data_size
    if end + ((-data_size) & 7) != total:
        raise NodeError(f"arrow buffers payload of {total} bytes, its table says "
                        f"{end + ((-data_size) & 7)}")  # fmt: skip
    import pyarrow as pa

    validity = pa.py_buffer(view[at : at + validity_size]) if nulls else None
    try:
        return pa.Array.from_buffers(
            arrow_type, length, [validity, pa.py_buffer(view[data_at:end])], nulls, offset
        )
    except (pa.ArrowException, ValueError, TypeError) as exc:  # never: the sizes are checked
        raise NodeError(f"arrow buffers payload that Arrow refuses: {exc}") from None


def _parse(key: bytes) -> tuple[Any, int]:
    """A schema message -> (type, bit width), cached, bounded; NodeError for anything else."""
    import pyarrow as pa
    import pyarrow.ipc  # pa.ipc is a submodule

    try:
        schema = pa.ipc.read_schema(pa.py_buffer(key))
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise NodeError(f"arrow buffers payload whose schema is not Arrow's: {exc}") from None
    if len(schema) != 1:
        raise NodeError(f"arrow buffers payload of {len(schema)} columns (expected 1)")
    arrow_type = schema.field(0).type
    width = bit_width(pa, arrow_type)
    if not width:
        raise NodeError(f"arrow buffers payload of type {arrow_type}: not a fixed-width type")
    if len(_READ) >= MAX_LAYOUTS:
        _READ.clear()
    layout = _READ[key] = (arrow_type, width)
    return layout
