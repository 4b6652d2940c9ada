"""Test node: at each tick send one message of every payload kind, with metadata, until COUNT.

`text` str, `raw` bytes, `array` a 2x3 float32 numpy array, `table` a pyarrow int64 array
with a null, `big` a 1 MiB uint8 numpy array (it travels in shared memory), `empty` None,
`point` a pyarrow struct of two rows (uint32 x, float64 y: the batch flow writes, kind 4).
Each value is made from the tick's number, so a receiver can tell them apart; the
metadata holds a NaN and an infinity too (a recording keeps them as standard JSON).
"""

import math
import os

import numpy as np
import pyarrow as pa

from node_sdk import Node

limit = int(os.environ.get("COUNT", "20"))
sent = 0


def send_round(node: Node, n: int) -> None:
    meta = {"i": n, "tag": f"m{n}", "q": [n / 2, math.nan], "top": math.inf}
    node.send_output("text", f"hello {n}", meta)
    node.send_output("raw", bytes([n % 256, 0, 255]), meta)
    node.send_output("array", np.arange(6, dtype=np.float32).reshape(2, 3) + n, meta)
    node.send_output("table", pa.array([n, None, -n], type=pa.int64()), meta)
    node.send_output("big", np.full(1 << 20, n % 256, dtype=np.uint8), meta)
    node.send_output("empty", None, meta)
    x = pa.array(np.array([n, n + 1], dtype=np.uint32))
    y = pa.array(np.array([n / 2, -n / 2]))
    node.send_output("point", pa.StructArray.from_arrays([x, y], names=["x", "y"]), meta)


with Node() as node:
    for event in node:
        if event["type"] != "INPUT":
            continue
        sent += 1
        send_round(node, sent)
        if sent >= limit:
            break
print(f"kinds sent {sent}", flush=True)
