"""Test node: count its own starts in a file, then crash (exit 1) at once."""

import os
import sys
import time
from pathlib import Path

from node_sdk import Node

with Node() as node:
    spawns = Path(os.environ["SPAWN_FILE"])
    with spawns.open("a") as file:
        file.write(f"{node.restart_count()} {time.monotonic()}\n")
    print("crasher: crashing", file=sys.stderr, flush=True)
    sys.exit(1)
