"""Arrow payloads (kind 4): an Arrow IPC stream of one record batch with one column `v`.

The schema message is the same for every array of a type, so the sender makes it once
per type (arrow_layout) and the receiver parses it once per schema; each message only
makes and reads its batch. The sender's stream is written where it goes: straight into a
shared-memory segment for a large payload (its one copy), joined for an inline one. A
small array's batch is serialized at once, its size read from that, rather than measured
by one write and made by a second. pyarrow is imported only by a node whose values are of
it. Over `arrow_layout` and `errors`.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from node_sdk.arrow_layout import (
    PYARROW,
    Layout,
    has_dictionary,
    keep_parsed,
    pyarrow_modules,
    readable,
)
from node_sdk.errors import NodeError

# An Arrow IPC stream is the schema message, the batch message, then this end marker.
_EOS: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_PREFIX: Final = struct.Struct("<Ii")  # continuation marker, metadata length
MAX_SCHEMAS: Final = 64  # schema messages the receiver remembers
# arrays whose buffers add up to at most this are serialized once, at encode: far below
# the shared-memory threshold (64 KiB by default), where a batch copied twice costs little
SERIALIZE_AT_ONCE: Final = 16 << 10
_READ: dict[bytes, tuple[Any, bool]] = {}  # receiver: schema message -> (schema, dictionaries)


class ArrowBody:
    """An arrow payload not written yet: the stream's bytes are made where they go (into a
    shared-memory segment: the one copy of the data), or joined for an inline send."""

    __slots__ = ("batch", "nbytes", "schema", "schema_message", "serialized", "stream")

    def __init__(
        self, schema: Any, schema_message: Any, batch: Any, nbytes: int, serialized: Any = None,
        stream: Any = None,
    ) -> None:  # fmt: skip
        self.schema = schema
        self.schema_message = schema_message
        self.batch = batch
        self.nbytes = nbytes
        self.serialized = serialized  # the batch message, when made at encode (a small one)
        self.stream = stream  # the whole stream, made at encode (a type with dictionaries)

    def join(self) -> Any:
        if self.stream is not None:
            return self.stream
        batch = self.batch.serialize() if self.serialized is None else self.serialized
        return b"".join((self.schema_message, batch, _EOS))

    def write_into(self, target: Any) -> None:
        """Write the stream into `target`, a writable buffer of exactly `nbytes`."""
        import pyarrow as pa
        import pyarrow.ipc  # pa.ipc is a submodule

        if self.serialized is not None or self.stream is not None:  # made already
            memoryview(target).cast("B")[: self.nbytes] = memoryview(self.join()).cast("B")
            return
        sink = pa.FixedSizeBufferWriter(pa.py_buffer(target))
        with pa.ipc.new_stream(sink, self.schema) as writer:
            writer.write_batch(self.batch)
        if sink.tell() != self.nbytes:  # never: the sizes come from Arrow itself
            raise NodeError(f"arrow payload of {sink.tell()} bytes, {self.nbytes} expected")


def encode(pa: Any, array: Any, layout: Layout) -> ArrowBody:
    """A pyarrow Array of `layout`'s type -> its stream, not written yet."""
    schema, message = layout.schema, layout.schema_message
    batch = pa.RecordBatch.from_arrays([array], schema=schema)
    if layout.dictionaries:  # the dictionary batches go between schema and record batch
        import pyarrow.ipc  # pa.ipc is a submodule

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_batch(batch)
        stream = sink.getvalue()
        return ArrowBody(schema, message, batch, stream.size, stream=stream)
    if array.get_total_buffer_size() <= SERIALIZE_AT_ONCE:  # every buffer whole: an upper bound
        serialized = batch.serialize()
        return ArrowBody(schema, message, batch, message.size + serialized.size + len(_EOS),
                         serialized)  # fmt: skip
    import pyarrow.ipc  # noqa: F401  (pa.ipc is a submodule)

    nbytes = message.size + pa.ipc.get_record_batch_size(batch) + len(_EOS)
    return ArrowBody(schema, message, batch, nbytes)


def decode(data: Any) -> Any:
    """An Arrow IPC stream of one batch of one column -> that column, without a copy; the
    schema message is parsed once per schema. NodeError for anything else."""
    pa, ipc = PYARROW or pyarrow_modules()
    try:
        marker, length = _PREFIX.unpack_from(data) if len(data) >= 8 else (0, 0)
        if marker == 0xFFFFFFFF and 0 < length <= len(data) - 8:
            end = 8 + length
            view = memoryview(data)
            key = bytes(view[:end])
            reading = _READ.get(key)
            if reading is None:
                reading = _parse(pa, ipc, key)
            schema, dictionaries = reading
            if not dictionaries:  # the usual: the record batch follows the schema
                batch = ipc.read_record_batch(ipc.read_message(pa.py_buffer(view[end:])), schema)
            else:  # dictionary batches first: Arrow's stream reader keeps them for the batch
                batch = ipc.open_stream(pa.py_buffer(data)).read_next_batch()
        else:  # not the framing flow writes: let Arrow's own stream reader judge it
            reader = ipc.open_stream(pa.py_buffer(data))
            readable(pa, reader.schema)
            batch = reader.read_next_batch()
            if batch.num_columns != 1:
                raise NodeError(f"arrow payload of {batch.num_columns} columns (expected 1)")
        array = batch.column(0)
        # Arrow's reader checks the buffers' sizes only: an offset past a string's data, a
        # wrong dictionary index... would make a read out of bounds later, in the user's
        # code, so a peer's stream is validated in full (O(n): a 1 MiB string array takes
        # about 70 us, a few strings well under 1 us). Kind 7 checks its sizes itself.
        array.validate(full=True)
    except NodeError:
        raise
    except Exception as exc:  # pyarrow on a hostile stream: ArrowInvalid, EOFError, ...
        raise NodeError(f"arrow payload that is not a valid Arrow IPC stream: {exc!r}") from None
    return array


def _parse(pa: Any, ipc: Any, key: bytes) -> tuple[Any, bool]:
    """A schema message -> (its schema, whether a dictionary is in it), cached, bounded."""
    schema = readable(pa, ipc.read_schema(pa.py_buffer(key)))
    if len(schema) != 1:
        raise NodeError(f"arrow payload of {len(schema)} columns (expected 1)")
    reading = (schema, has_dictionary(pa, schema.field(0).type))
    keep_parsed(_READ, key, reading, MAX_SCHEMAS)
    return reading


