"""Test node: count its own starts in a file, then run until stopped."""

import os
from pathlib import Path

from node_sdk import Node

with Node() as node:
    with Path(os.environ["SPAWN_FILE"]).open("a") as file:
        file.write("start\n")
    for _event in node:
        pass
