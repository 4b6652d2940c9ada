"""Test node: print each value it gets as `got INPUT KIND DESCRIPTION meta=I`, one line each.

The description is exact for small values (numpy dtype, shape and items; arrow type and
items; bytes in hex) and a checksum for large ones, so two runs' lines can be compared.
"""

from node_sdk import Node


def describe(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"str {value!r}"
    if isinstance(value, bytes | memoryview):
        return f"bytes {bytes(value).hex()}"
    module = type(value).__module__
    if module.startswith("numpy"):
        items = value.tolist() if value.size <= 16 else f"sum={int(value.sum())}"
        return f"numpy {value.dtype} {list(value.shape)} {items}"
    if module.startswith("pyarrow"):
        return f"arrow {value.type} {value.to_pylist()}"
    return f"other {type(value).__name__}"


with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            meta = event["metadata"].get("i")
            print(f"got {event['id']} {describe(event['value'])} meta={meta}", flush=True)
