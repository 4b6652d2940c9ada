"""numpy payloads (kind 3) as a receiver reads them: the header's dtype and shape parsed once
per layout, every size checked, the array made over the frame without a copy, and what
numpy itself would refuse later (a shape it cannot make, str elements past Unicode)
refused now with NodeError. The sender's side is `wire._encode_numpy`. A leaf beside
`errors`; numpy is imported only by a node that receives such a payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from node_sdk.errors import NodeError

_LAYOUTS: dict[tuple[Any, ...], tuple[Any, tuple[int, ...], int]] = {}
MAX_DIMS: Final = 64  # numpy's limit on an array's dimensions
MAX_LAYOUTS: Final = 256


def _layout(extra: Mapping[str, Any]) -> tuple[Any, tuple[int, ...], int]:
    """(dtype, shape, byte size) of a numpy payload's `dt`/`sh`, parsed once per layout: a
    receiver gets the same few layouts again and again. NodeError for anything else."""
    dt, sh = extra.get("dt"), extra.get("sh")
    try:
        key = (dt, *sh)  # type: ignore[misc]
        known = _LAYOUTS.get(key)
    except TypeError:  # no shape, or an unhashable one
        raise NodeError(f"numpy payload without a valid dtype and shape: {dt!r}, {sh!r}") from None
    if known is not None:
        return known
    import numpy as np

    try:
        dtype = np.dtype(dt)
    except (TypeError, ValueError) as exc:
        raise NodeError(f"numpy payload with a bad dtype {str(dt)[:80]!r}: {exc}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.itemsize == 0:
        raise NodeError(f"numpy payload of dtype {dtype}: no raw layout")
    shape = tuple(sh)  # type: ignore[arg-type]
    if len(shape) > MAX_DIMS:  # numpy's own bound: reshape would raise ValueError
        raise NodeError(f"numpy payload of {len(shape)} dimensions (at most {MAX_DIMS})")
    nbytes = dtype.itemsize
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise NodeError(f"numpy payload with a bad shape {str(sh)[:80]}")
        nbytes *= dim
    if len(_LAYOUTS) >= MAX_LAYOUTS:
        _LAYOUTS.clear()
    known = _LAYOUTS[key] = (dtype, shape, nbytes)
    return known


def decode(data: Any, extra: Mapping[str, Any]) -> Any:
    """A numpy payload's bytes and its header's `dt`/`sh` -> a read-only array over them."""
    dtype, shape, nbytes = _layout(extra)
    if len(data) != nbytes:
        raise NodeError(f"numpy payload of {len(data)} bytes for {nbytes} ({dtype}, {shape})")
    import numpy as np

    array = np.frombuffer(data, dtype=dtype)
    if dtype.kind == "U" and nbytes and int(array.view(dtype.str[0] + "u4").max()) > 0x10FFFF:
        # past Unicode: numpy makes such an element a str only by failing (SystemError)
        raise NodeError("numpy payload of str elements with code points past U+10FFFF")
    if len(shape) != 1:
        try:
            array = array.reshape(shape)
        except ValueError as exc:  # a shape numpy refuses (too big, even of 0 bytes)
            raise NodeError(f"numpy payload with a shape numpy refuses: {exc}") from None
    if type(data) is not memoryview or not data.readonly:
        array.flags.writeable = False  # bytes and read-only views make a read-only array
    return array
