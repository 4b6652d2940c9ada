"""Test node: print each value it gets as `got INPUT KIND DESCRIPTION meta=I q=Q top=T`,
one line each (I, Q, T: metadata keys).

The description is exact for small values (numpy dtype, shape and items; arrow type and
items; bytes in hex) and a checksum for large ones, so two runs' lines can be compared.
With SINK_TIMES set, it also appends `INPUT MONOTONIC` to that file as each value comes
(its own clock: a log line's stamp is when the keeper read it, which a loaded machine
delays for several lines at once).
"""

import os
import time

from node_sdk import Node

TIMES = os.environ.get("SINK_TIMES")


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
            extra = event["metadata"]
            meta = f"{extra.get('i')} q={extra.get('q')!r} top={extra.get('top')!r}"
            if TIMES:
                with open(TIMES, "a") as times:
                    times.write(f"{event['id']} {time.monotonic()}\n")
            print(f"got {event['id']} {describe(event['value'])} meta={meta}", flush=True)
