"""The sender's layout of an arrow type, made once per type: which arrow kind carries its
arrays and the schema bytes that kind sends.

A fixed-width type, or a struct of fixed-width fields, travels as its own buffers (kind 7,
arrow_buffers), but a whole struct of byte-wide fields without nulls as an Arrow IPC stream
whose batch message flow writes (kind 4, arrow_batch), anything else as Arrow's IPC stream
(kind 4, arrow_ipc); all send the IPC schema message of a one-column schema `v`. One
cache serves every kind, so a send compares its array's type with the last one once: a
paced message meets that comparison with the core's caches cold, where it costs 5 to 11 us
(docs/performance.md). pyarrow is handed in by the caller. A leaf.
"""

from __future__ import annotations

from typing import Any, Final

MAX_LAYOUTS: Final = 64  # types remembered
# a receiver keeps a peer's schema message parsed up to this size (a schema of thousands
# of fields): a larger one, padded by a hostile peer, is parsed each time, so the caches
# (64 each) never pin more than 16 MiB
MAX_CACHED_SCHEMA: Final = 256 << 10
PAD: Final = tuple(bytes(n) for n in range(8))  # zeros to the next multiple of 8
# a receiver's pyarrow and pyarrow.ipc, once its first arrow payload imported them
# (`pyarrow_modules`): an import statement per message costs a few tenths of a microsecond
PYARROW: list[Any] = []


class Layout:
    """How arrays of one type are sent."""

    __slots__ = ("batches", "buffers_schema", "dictionaries", "fields", "prefixes", "row_bits",
                 "schema", "schema_message", "width")  # fmt: skip

    def __init__(
        self, schema: Any, schema_message: Any, width: int, fields: tuple[int, ...] = (),
        dictionaries: bool = False,
    ) -> None:  # fmt: skip
        self.schema = schema  # the one-column schema (a pyarrow Schema)
        self.schema_message = schema_message  # its IPC message (a pyarrow Buffer)
        self.width = width  # bit width of a kind-7 type (1: bool); 0: a struct or kind 4
        self.fields = fields  # bit width of each field of a kind-7 struct; (): not one
        self.row_bits = sum(fields)  # a struct row's bits: its size, without a sum per send
        # a dictionary anywhere in the type: its values travel in dictionary batches before
        # the record batch, so kind 4 sends Arrow's whole stream for it
        self.dictionaries = dictionaries
        # kind 7's copy of the message, padded to 8 bytes so the buffers behind it align
        raw = schema_message.to_pybytes() if width or fields else b""
        self.buffers_schema = raw + PAD[(-len(raw)) & 7]
        # kind 7's table and schema per length of a whole array without nulls (the usual),
        # which arrow_buffers makes once per length
        self.prefixes: dict[int, bytes] = {}
        # a struct of byte-wide fields: its record batch message per length, which
        # arrow_batch writes itself (None: not such a struct)
        self.batches: dict[int, bytes] | None = (
            {} if fields and all(field >= 8 for field in fields) else None
        )


def bit_width(pa: Any, arrow_type: Any) -> int:
    """The bit width of a fixed-width type kind 7 carries (1: bool), else 0."""
    if arrow_type.num_buffers != 2 or pa.types.is_dictionary(arrow_type):
        return 0  # strings, lists, structs, unions, nulls... (3 buffers, children, or none)
    if isinstance(arrow_type, pa.BaseExtensionType):  # uuid, user types: IPC carries them
        return 0
    try:
        width = int(arrow_type.bit_width)
    except ValueError:  # not fixed width
        return 0
    return width if width == 1 or (width >= 8 and width % 8 == 0) else 0


def field_widths(pa: Any, arrow_type: Any) -> tuple[int, ...]:
    """The bit width of each field of a struct kind 7 carries (every field of a fixed-width
    type), else (): a struct of strings, lists or structs keeps kind 4."""
    if not pa.types.is_struct(arrow_type) or not arrow_type.num_fields:
        return ()
    widths = tuple(bit_width(pa, field.type) for field in arrow_type)
    return widths if all(widths) else ()


def has_dictionary(pa: Any, arrow_type: Any) -> bool:
    """Whether a dictionary type is anywhere in `arrow_type` (a struct's or a list's too)."""
    types = [arrow_type]
    while types:
        current = types.pop()
        if pa.types.is_dictionary(current):
            return True
        types.extend(current.field(i).type for i in range(current.num_fields))
    return False


def readable(pa: Any, schema: Any) -> Any:
    """`schema` (a peer's), once every text in it that pyarrow decodes when asked (a field
    name, nested ones too; a timestamp's time zone) has been read: one that is not UTF-8
    raises here, where the caller refuses the payload, not later in the user's code."""
    types = []
    for index in range(len(schema)):
        field = schema.field(index)
        field.name  # noqa: B018  (reading it is the check: pyarrow decodes it then)
        types.append(field.type)
    while types:  # Arrow's reader bounds the nesting
        arrow_type = types.pop()
        for index in range(arrow_type.num_fields):
            field = arrow_type.field(index)
            field.name  # noqa: B018
            types.append(field.type)
        if pa.types.is_timestamp(arrow_type):
            arrow_type.tz  # noqa: B018
        value_type = getattr(arrow_type, "value_type", None)  # a dictionary's values
        if value_type is not None:
            types.append(value_type)
    return schema


def pyarrow_modules() -> list[Any]:
    """`PYARROW`, imported the first time (by the receivers of kind 4 and kind 7 alike)."""
    if not PYARROW:
        import pyarrow as pa
        import pyarrow.ipc  # pa.ipc is a submodule

        PYARROW[:] = pa, pa.ipc
    return PYARROW


def keep_parsed(cache: dict[bytes, Any], key: bytes, reading: Any, most: int) -> None:
    """Remember a peer's schema message parsed (`cache` holds at most `most`, emptied when
    full), unless it is over MAX_CACHED_SCHEMA: a padded one is parsed each time, not kept."""
    if len(key) > MAX_CACHED_SCHEMA:
        return
    if len(cache) >= most:
        cache.clear()
    cache[key] = reading


_KNOWN: dict[Any, Layout] = {}
_LAST: list[Any] = [None, None]  # the last type sent and its layout


def of(pa: Any, arrow_type: Any) -> Layout:
    """The layout of `arrow_type`, made on its first send and remembered (bounded)."""
    last_type, layout = _LAST
    if last_type is not None and arrow_type.equals(last_type):
        return layout  # type: ignore[no-any-return]
    layout = _KNOWN.get(arrow_type)  # hashing a struct type costs 1.5 us, comparing 0.04
    if layout is None:
        schema = pa.schema([pa.field("v", arrow_type)])
        layout = Layout(schema, schema.serialize(), bit_width(pa, arrow_type),
                        field_widths(pa, arrow_type), has_dictionary(pa, arrow_type))  # fmt: skip
        if len(_KNOWN) >= MAX_LAYOUTS:
            _KNOWN.clear()
        _KNOWN[arrow_type] = layout
    _LAST[:] = arrow_type, layout
    return layout
