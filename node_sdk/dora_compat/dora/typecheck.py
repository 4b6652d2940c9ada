"""`output_types` checked at send time: a value of another type than declared is refused.

`flow check` already compares the two ends of an edge where both declare a type; this is
the other half, the node's own values. For each output the node's `output_types` names as
a dora core type (`std/core/v1/Float64`, `.../String`, ...), `checks()` builds one
function, so a send costs one dict lookup plus, for a declared output, one comparison of
the value's Arrow type (or numpy dtype) with the declared one. Types flow cannot map to an
Arrow type (`std/media/v1/Image`, user types, `Bytes`, which takes anything) are not
checked at send time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from node_sdk.errors import NodeError

# dora's core types (dora's libraries/core types registry) -> the Arrow type name in pyarrow
_ARROW: Mapping[str, str] = {
    "Float32": "float", "Float64": "double", "Int8": "int8", "Int16": "int16",
    "Int32": "int32", "Int64": "int64", "UInt8": "uint8", "UInt16": "uint16",
    "UInt32": "uint32", "UInt64": "uint64", "String": "string", "Bool": "bool",
}  # fmt: skip
# numpy's dtype name of the same values (a numpy array is sent as is on flow)
_NUMPY: Mapping[str, str] = {
    "float": "float32", "double": "float64", "string": "<U", "bool": "bool",
}  # fmt: skip
_CORE = "std/core/v1/"


class OutputTypeError(NodeError):
    """A value sent on an output of a declared type is of another type."""


def _given(data: Any) -> str:
    """The type of a value, in the words of the error: an Arrow type, a dtype, a class."""
    arrow = getattr(data, "type", None)
    if arrow is not None:
        return f"Arrow {arrow}"
    dtype = getattr(data, "dtype", None)
    if dtype is not None:
        return f"numpy {dtype}"
    return type(data).__name__


def _checker(node: str, output: str, urn: str, arrow: str) -> Callable[[Any], None]:
    dtype = _NUMPY.get(arrow, arrow)
    accepted: list[Any] = [None]  # the last Arrow type or dtype found right: the fast path

    def fits(data: Any) -> bool:
        kind = getattr(data, "type", None)  # a pyarrow array
        if kind is not None:
            found = str(kind) == arrow
        elif isinstance(data, str):
            return arrow == "string"
        else:
            kind = getattr(data, "dtype", None)  # a numpy array
            if kind is None:
                return False
            found = kind.kind == "U" if dtype == "<U" else kind.name == dtype
        if found:
            accepted[0] = kind
        return found

    def check(data: Any) -> None:
        # one comparison per send once a right value was seen: pyarrow types and numpy
        # dtypes compare in C
        kind = getattr(data, "type", None)
        if kind is None:
            kind = getattr(data, "dtype", None)
        if kind is not None and kind == accepted[0]:
            return
        if not fits(data):
            raise OutputTypeError(
                f"node {node!r}: output {output!r} is declared {urn} (Arrow {arrow}) in "
                f"output_types, but the value sent is {_given(data)}"
            )

    return check


def checks(node: str, declared: object) -> dict[str, Callable[[Any], None]]:
    """A check per output of `declared` (the node's `output_types`) that has a core type."""
    found: dict[str, Callable[[Any], None]] = {}
    if not isinstance(declared, dict):
        return found
    for output, urn in declared.items():
        if not isinstance(urn, str) or not urn.startswith(_CORE):
            continue
        name = urn[len(_CORE) :].partition("[")[0]
        arrow = _ARROW.get(name)
        if arrow is not None:
            found[str(output)] = _checker(node, str(output), urn, arrow)
    return found
