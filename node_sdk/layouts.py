"""numpy payloads on the send path: the header extra of each array layout, built once.

A camera node sends a new array per frame, and every one has the dtype and shape of the
last: the `dt`/`sh` keys of the header extra (docs/protocol.md) are encoded once per
(dtype, shape) of an output, and each message only encodes its metadata in front of them.
The bytes go as a flat view of the array itself, so nothing is copied before the one
copy into a shared-memory segment (or zmq's own, inline). A leaf beside `wire`.
"""

from __future__ import annotations

from typing import Any, Final

from node_sdk.errors import NodeError
from node_sdk.wire import KIND_NUMPY, encode_extra, encode_payload, metadata_extra

MAX_LAYOUTS: Final = 64  # per output; an output sending ever new shapes starts over


class _Layout:
    """What the header says about arrays of one (dtype, shape)."""

    __slots__ = ("plain", "tail", "viewable")

    def __init__(self, plain: bytes, viewable: bool) -> None:
        self.plain = plain  # the whole extra of a message without metadata
        self.tail = b"," + plain[1:]  # the end of one with metadata: after `{"m":{...}`
        self.viewable = viewable  # the dtype has a buffer format (datetime64 has none)


class Layouts:
    """The layouts one output has sent, by (dtype, shape); the node's own thread only."""

    __slots__ = ("_known", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._known: dict[tuple[Any, tuple[int, ...]], _Layout] = {}

    def encode(self, array: Any, metadata: Any) -> tuple[Any, int, bool, bytes]:
        """An exact `numpy.ndarray` -> (bytes to send, their size, whether zmq may keep
        them without a copy, the header extra); NodeError names what cannot be sent."""
        layout = self._known.get((array.dtype, array.shape))
        if layout is None:
            layout = self._learn(array)
        body: Any = None
        if layout.viewable:
            try:
                body = memoryview(array).cast("B")  # the array's own bytes, no copy
            except TypeError:  # not C-contiguous: the general encoder copies it once
                body = None
        if body is None:
            payload = encode_payload(array)
            body, nbytes, safe = payload.data, payload.nbytes, payload.zero_copy_safe
        else:
            nbytes, safe = body.nbytes, body.readonly
        extra = layout.plain if not metadata else metadata_extra(layout.tail, metadata)
        return body, nbytes, safe, extra

    def _learn(self, array: Any) -> _Layout:
        payload = encode_payload(array)  # refuses object and structured dtypes
        if payload.kind != KIND_NUMPY:
            raise NodeError(f"not a numpy array: {type(array).__name__}")
        try:
            memoryview(array)
            viewable = True
        except (ValueError, BufferError):  # numpy exports no datetime64/timedelta64 buffer
            viewable = False
        if len(self._known) >= MAX_LAYOUTS:
            self._known.clear()
        layout = _Layout(encode_extra(self._source, None, payload.fields), viewable)
        self._known[(array.dtype, array.shape)] = layout
        return layout


def numpy_fields(dtype: str, shape: tuple[int, ...] | None, nbytes: int) -> dict[str, Any]:
    """The header keys of a numpy payload of `nbytes` (`send_output_buffer`)."""
    import numpy as np

    dt = np.dtype(dtype)
    dims = (nbytes // max(dt.itemsize, 1),) if shape is None else tuple(shape)
    count = 1
    for dim in dims:
        count *= dim
    if count * dt.itemsize != nbytes:
        raise NodeError(f"a buffer of {nbytes} bytes is not a {dt} array of shape {dims}")
    return {"dt": dt.str, "sh": list(dims)}
