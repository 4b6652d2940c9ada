"""Test node: print LINES long lines to stdout, then exit 0 (fills a small log disk)."""

import os

from node_sdk import Node

lines = int(os.environ.get("LINES", "2000"))
with Node() as node:
    for i in range(lines):
        print(f"chatty line {i} " + "x" * 200, flush=True)
print("chatty done", flush=True)
