"""Arrow payloads of a fixed-width type or a struct of them (kind 7): the array's own
buffers, no IPC batch.

An array of integers, floats, bool, temporal values, decimals or fixed-size binary
travels as its validity bitmap and data buffer behind a fixed table (length, null count,
offset, buffer sizes) and the Arrow IPC schema message of its type (the one kind 4 sends),
made once per type by the sender (arrow_layout) and parsed once per schema by the
receiver; the receiver rebuilds the array with `Array.from_buffers` over the frame,
without a copy (docs/protocol.md, "Data frames"). A struct whose fields are all of such
types travels as its own bitmap and then each field the same way, behind a table of its
own. Every size is checked against the type before a buffer is touched: a frame that does
not add up is a NodeError. Anything else (strings, lists, nested structs, dictionaries...)
keeps the Arrow IPC stream (arrow_ipc). pyarrow is imported only by a node whose values
are of it. Beside `arrow_ipc`, over `arrow_layout`.
"""

from __future__ import annotations

import struct
from typing import Any, Final, NamedTuple

from node_sdk.arrow_layout import (
    PAD,
    PYARROW,
    Layout,
    bit_width,
    field_widths,
    keep_parsed,
    pyarrow_modules,
    readable,
)
from node_sdk.errors import NodeError

# schema message length, fields (0: not a struct), length, null count, offset, validity
# size, data size (0 for a struct)
TABLE: Final = struct.Struct("<IIqqqQQ")
# before each field of a struct: its null count, offset, validity size, data size (its
# length is the struct's)
FIELD: Final = struct.Struct("<qqQQ")
ABSENT: Final = 0xFFFF_FFFF_FFFF_FFFF  # the size of a validity bitmap not sent (no nulls)
MAX_LAYOUTS: Final = 64  # schema messages the receiver remembers
MAX_PREFIXES: Final = 256  # lengths a layout keeps the table and schema of


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


def encode(array: Any, layout: Layout) -> BuffersBody | None:
    """A pyarrow Array of a type kind 7 carries (`layout.width` or `layout.fields` set) ->
    its buffers as a payload of this kind; None for a struct with nulls at an offset off a
    byte (its bitmap would need a shift: kind 4 carries it)."""
    schema = layout.buffers_schema
    length = len(array)
    width = layout.width
    if width >= 8 and not array.null_count and not array.offset:
        # the usual array (whole, no nulls): its data buffer as it is, behind the table and
        # schema its length has (`_leaf` inline)
        data = array.buffers()[1]
        size = length * (width >> 3)
        if data is not None and data.size == size:
            prefix = layout.prefixes.get(length)
            if prefix is None:
                prefix = _prefix(layout, length, size)
            pad = (-size) & 7
            whole = [prefix, data, PAD[pad]] if pad else [prefix, data]
            return BuffersBody(whole, len(prefix) + size + pad)
    pieces: list[Any] = [None, schema]
    if not layout.fields:
        nulls, shift, validity_size, data_size, nbytes = _leaf(
            array, layout.width, pieces, TABLE.size + len(schema)
        )
        pieces[0] = TABLE.pack(len(schema), 0, length, nulls, shift, validity_size, data_size)
        return BuffersBody(pieces, nbytes)
    nulls, offset = array.null_count, array.offset
    raw = array.buffers()  # the struct's bitmap, then each field's bitmap and data, unsliced
    validity_size = ABSENT
    nbytes = TABLE.size + len(schema)
    if nulls:
        if offset & 7:
            return None
        validity = raw[0].slice(offset >> 3, (length + 7) >> 3)
        validity_size = len(validity)
        pad = (-validity_size) & 7
        pieces += (validity, PAD[pad]) if pad else (validity,)
        nbytes += validity_size + pad
    for index, width in enumerate(layout.fields):
        data = raw[2 + 2 * index]
        if not offset and width >= 8 and raw[1 + 2 * index] is None and data is not None \
                and data.size == length * (width >> 3):  # fmt: skip
            # a whole field without nulls (the usual struct, made of whole arrays): a
            # data buffer of exactly its values has offset 0, so it is sent as it is,
            # without the 0.5 us `field()` costs
            pad = (-data.size) & 7
            pieces.append(FIELD.pack(0, 0, ABSENT, data.size))
            pieces += (data, PAD[pad]) if pad else (data,)
            nbytes += FIELD.size + data.size + pad
            continue
        at = len(pieces)
        pieces.append(None)
        field_nulls, shift, field_validity, field_data, nbytes = _leaf(
            array.field(index), width, pieces, nbytes + FIELD.size
        )
        pieces[at] = FIELD.pack(field_nulls, shift, field_validity, field_data)
    pieces[0] = TABLE.pack(len(schema), len(layout.fields), length, nulls, 0, validity_size, 0)
    return BuffersBody(pieces, nbytes)


def _prefix(layout: Layout, length: int, size: int) -> bytes:
    """The table and schema of a whole array of `length` values (`size` bytes) without
    nulls, kept in `layout.prefixes` (bounded)."""
    prefixes = layout.prefixes
    if len(prefixes) >= MAX_PREFIXES:
        prefixes.clear()
    schema = layout.buffers_schema
    prefix = prefixes[length] = TABLE.pack(len(schema), 0, length, 0, 0, ABSENT, size) + schema
    return prefix


def _leaf(array: Any, width: int, pieces: list[Any], nbytes: int) -> tuple[int, int, int, int, int]:
    """Append a fixed-width array's bitmap and data to `pieces`, each padded to 8 bytes ->
    (null count, offset, validity size, data size, `nbytes` with them)."""
    length, offset, nulls = len(array), array.offset, array.null_count
    raw = array.buffers()
    # keep only the offset's bits below a byte (bitmaps then need no shift) and send the
    # bytes from there: a slice of a large array sends only what it holds
    shift = offset & 7 if nulls or width == 1 else 0
    start, end = offset - shift, offset + length
    validity_size = ABSENT
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
        if start or data.size != length * step:  # whole already (the usual): no slice
            data = data.slice(start * step, (end - start) * step)
    data_size = len(data)
    pieces.append(data)
    pad = (-data_size) & 7
    if pad:
        pieces.append(PAD[pad])
    return nulls, shift, validity_size, data_size, nbytes + data_size + pad


class _Reading(NamedTuple):
    """How the receiver rebuilds arrays of one schema message, made once per message."""

    arrow_type: Any
    width: int  # bit width of a plain fixed-width type; 0 for a struct
    fields: tuple[tuple[Any, int], ...]  # a struct's (field type, bit width)
    # Arrow's full validation is needed: a type some values of which it refuses (a decimal
    # past its precision, a time of day past a day). An integer, float, bool or fixed-size
    # binary has none: every bit pattern is a value, and the sizes are checked here.
    values_checked: bool
    # bytes a value of a byte-wide type whose values need no validation takes (a whole
    # array without nulls of it is built without `_leaf_array`); 0 for any other
    step: int


_READ: dict[bytes, _Reading] = {}  # schema message -> its reading, bounded
_TABLE_SIZE: Final = TABLE.size
_FIELD_SIZE: Final = FIELD.size


def decode(data: Any) -> Any:
    """A payload of this kind -> the array, over `data`'s own memory (no copy). NodeError
    for a payload whose sizes do not add up to its type's buffers."""
    view = data if type(data) is memoryview else memoryview(data)
    if view.format != "B" or view.ndim != 1:  # frames and segments are bytes already
        view = view.cast("B")
    total = view.nbytes
    if total < _TABLE_SIZE:
        raise NodeError(f"arrow buffers payload of {total} bytes")
    schema_size, fields, length, nulls, offset, validity_size, data_size = TABLE.unpack_from(view)
    at = _TABLE_SIZE + schema_size
    if at > total:
        raise NodeError(f"arrow buffers payload of {total} bytes, schema of {schema_size}")
    key = bytes(view[_TABLE_SIZE:at])
    reading = _READ.get(key)
    if reading is None:
        reading = _parse(key)
    if fields != len(reading.fields):
        raise NodeError(f"arrow buffers payload of {fields} fields for type {reading.arrow_type}")
    at += (-schema_size) & 7
    step = reading.step
    end = at + data_size
    if step and not (fields or nulls or offset) and validity_size == ABSENT \
            and data_size == length * step and end + ((-data_size) & 7) == total:  # fmt: skip
        # the usual array: whole, without nulls, of a type Arrow need not validate. What
        # these say is all `_leaf_array` would check of it (data_size, unsigned, makes the
        # length >= 0), so it is built as raw pyzmq's receiver builds it (a 1 KiB uint8
        # array 2.8 -> 2.3 us, docs/performance.md)
        pa = PYARROW[0]  # imported by `_parse`, which made `reading`
        return pa.Array.from_buffers(reading.arrow_type, length, [None, pa.py_buffer(view[at:end])])
    return _checked(view, total, at, reading, length, nulls, offset, validity_size, data_size)


def _checked(
    view: memoryview, total: int, at: int, reading: _Reading,
    length: int, nulls: int, offset: int, validity_size: int, data_size: int,
) -> Any:  # fmt: skip
    """`decode` of any other frame: every size checked, the values by Arrow where needed."""
    arrow_type, width, struct_fields, values_checked, _ = reading
    pa = PYARROW[0]
    whole = pa.py_buffer(view)  # each buffer a slice of it: the frame's memory, no copy
    if not struct_fields:
        array, at = _leaf_array(pa, whole, at, arrow_type, width, length, nulls, offset,
                                validity_size, data_size)  # fmt: skip
    else:
        array, at = _struct_array(pa, view, whole, at, reading, length, nulls, offset,
                                  validity_size, data_size)  # fmt: skip
    if at != total:
        raise NodeError(f"arrow buffers payload of {total} bytes, its table says {at}")
    if values_checked:
        try:  # the sizes are checked; the values are Arrow's to judge
            array.validate(full=True)
        except pa.ArrowException as exc:
            raise NodeError(f"arrow buffers payload of values Arrow refuses: {exc}") from None
    return array


def _struct_array(
    pa: Any, view: memoryview, whole: Any, at: int, reading: _Reading,
    length: int, nulls: int, offset: int, validity_size: int, data_size: int,
) -> tuple[Any, int]:  # fmt: skip
    """The struct whose bitmap (if any) and fields start at `at` -> (it, where it ends)."""
    total = whole.size
    if length < 0 or not 0 <= nulls <= length or offset or data_size:
        raise NodeError(f"arrow buffers payload: a struct of {length} values, {nulls} "
                        f"null, at {offset}, data of {data_size} bytes")  # fmt: skip
    validity = None
    if validity_size != ((length + 7) >> 3 if nulls else ABSENT):
        raise NodeError(f"arrow buffers payload: a bitmap of {validity_size} bytes for "
                        f"a struct of {length} values, {nulls} null")  # fmt: skip
    if nulls:
        if at + validity_size > total:
            raise NodeError(f"arrow buffers payload of {total} bytes, cut in a bitmap")
        validity = whole.slice(at, validity_size)
        at += validity_size + ((-validity_size) & 7)
    children = []
    for field_type, field_width in reading.fields:
        if at + _FIELD_SIZE > total:
            raise NodeError(f"arrow buffers payload of {total} bytes, cut in a field")
        field_nulls, field_offset, field_validity, field_data = FIELD.unpack_from(view, at)
        child, at = _leaf_array(pa, whole, at + _FIELD_SIZE, field_type, field_width, length,
                                field_nulls, field_offset, field_validity, field_data)  # fmt: skip
        children.append(child)
    array = _built(pa, reading.arrow_type, length, [validity], -1 if nulls else 0, 0, children)
    return array, at


def _leaf_array(
    pa: Any, whole: Any, at: int, arrow_type: Any, width: int,
    length: int, nulls: int, offset: int, validity_size: int, data_size: int,
) -> tuple[Any, int]:  # fmt: skip
    """The fixed-width array whose padded buffers start at `at` in `whole` (the payload as
    a pyarrow Buffer), as its table says -> (it, where it ends)."""
    if length < 0 or not 0 <= nulls <= length or not 0 <= offset < 8:
        raise NodeError(f"arrow buffers payload: {length} values, {nulls} null, at {offset}")
    bitmap = (offset + length + 7) >> 3
    expected = bitmap if width == 1 else (offset + length) * (width >> 3)
    if data_size != expected or validity_size != (bitmap if nulls else ABSENT):
        raise NodeError(
            f"arrow buffers payload: buffers of {validity_size} and {data_size} bytes for "
            f"{length} values of {arrow_type} at {offset}"
        )
    data_at = at + (validity_size + ((-validity_size) & 7) if nulls else 0)
    end = data_at + data_size
    after = end + ((-data_size) & 7)
    if after > whole.size:
        raise NodeError(f"arrow buffers payload of {whole.size} bytes, its table says {after}")
    validity = whole.slice(at, validity_size) if nulls else None
    data = whole.slice(data_at, data_size)
    # with a bitmap, Arrow counts its nulls when asked (-1): a count from the frame that
    # the bitmap contradicts would leave an array its own validation refuses
    array = _built(pa, arrow_type, length, [validity, data], -1 if nulls else 0, offset)
    return array, after


def _built(
    pa: Any, arrow_type: Any, length: int, buffers: list[Any], nulls: int, offset: int,
    children: list[Any] | None = None,
) -> Any:  # fmt: skip
    try:
        return pa.Array.from_buffers(arrow_type, length, buffers, nulls, offset, children)
    except (pa.ArrowException, ValueError, TypeError) as exc:  # never: the sizes are checked
        raise NodeError(f"arrow buffers payload that Arrow refuses: {exc}") from None


def _parse(key: bytes) -> _Reading:
    """A schema message -> its reading, cached, bounded; NodeError for anything else."""
    pa, _ = pyarrow_modules()
    try:
        schema = readable(pa, pa.ipc.read_schema(pa.py_buffer(key)))
    except Exception as exc:  # pyarrow on a hostile schema: ArrowInvalid, OSError, ...
        raise NodeError(f"arrow buffers payload whose schema is not Arrow's: {exc!r}") from None
    if len(schema) != 1:
        raise NodeError(f"arrow buffers payload of {len(schema)} columns (expected 1)")
    arrow_type = schema.field(0).type
    width = bit_width(pa, arrow_type)
    widths = field_widths(pa, arrow_type)
    if not width and not widths:
        raise NodeError(f"arrow buffers payload of type {arrow_type}: not a fixed-width type "
                        "nor a struct of them")  # fmt: skip
    struct_fields = tuple((arrow_type.field(index).type, field_width)
                          for index, field_width in enumerate(widths))  # fmt: skip
    types = [field_type for field_type, _ in struct_fields] or [arrow_type]
    checked = not all(_any_bits_a_value(pa, each) for each in types)
    step = width >> 3 if width >= 8 and not struct_fields and not checked else 0
    reading = _Reading(arrow_type, width, struct_fields, checked, step)
    keep_parsed(_READ, key, reading, MAX_LAYOUTS)
    return reading


def _any_bits_a_value(pa: Any, arrow_type: Any) -> bool:
    """Whether every bit pattern of its width is a value of `arrow_type` (nothing for
    Arrow's full validation to refuse)."""
    types = pa.types
    return bool(
        types.is_integer(arrow_type)
        or types.is_floating(arrow_type)
        or types.is_boolean(arrow_type)
        or types.is_fixed_size_binary(arrow_type)
    )
