"""What the bench's node scripts share: the SDK to use (flow's or dora's), and the payloads."""

from __future__ import annotations

import json
import os
import time
from typing import Any

if os.environ.get("BENCH_SDK") == "dora":
    from dora import Node
else:
    from node_sdk import Node  # noqa: F401  (re-exported for the node scripts)

SDK = os.environ.get("BENCH_SDK", "flow")


def payload(size: int) -> Any:
    """The value to send: bytes for flow, a pyarrow uint8 array for dora (its native kind)."""
    raw = bytes(size)
    if SDK == "dora":
        import numpy as np
        import pyarrow as pa

        return pa.array(np.frombuffer(raw, dtype=np.uint8))
    return raw


def write_result(result: dict[str, Any]) -> None:
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


now = time.time_ns
