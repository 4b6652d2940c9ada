"""Test node: forward values, then fail with exit code FAIL_CODE after FAIL_AFTER inputs."""

import os
import sys

from node_sdk import Node

after = int(os.environ.get("FAIL_AFTER", "3"))
code = int(os.environ.get("FAIL_CODE", "3"))
node = Node()
seen = 0
for event in node:
    if event["type"] == "INPUT":
        seen += 1
        node.send_output("out", event["value"])
        if seen >= after:
            print("failer: something went wrong", file=sys.stderr, flush=True)
            print(f"failer: giving up after {seen} values", file=sys.stderr, flush=True)
            sys.exit(code)
