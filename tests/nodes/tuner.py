"""Test node: logs its parameters as JSON lines to PARAM_LOG (at start, on each PARAM event).

It refuses a negative `gain` while handling its event (`reject_param`), its validator
refuses any value of `locked` before the event comes, and handling `block` keeps it busy
until the file UNBLOCK_FILE exists (a node that does not come back for its next event in
time, for as long as the test needs, however slow a loaded machine makes its steps);
handling `crash` ends the process with code 1 before it answers, and handling `raise`
raises (out of `with Node()`, or, with NO_WITH set, out of the script: the exit closes it).
"""

import json
import os
import time
from pathlib import Path

from node_sdk import Node

log = Path(os.environ["PARAM_LOG"])


def write(entry: dict) -> None:
    with log.open("a") as file:
        file.write(json.dumps(entry) + "\n")


def validator(key: str, value: object) -> str | None:
    return "locked is read-only" if key == "locked" else None


def serve(node: Node) -> None:
    node.set_param_validator(validator)
    write({"start": dict(node.params)})
    for event in node:
        if event["type"] != "PARAM":
            continue
        key, value = event["id"], event["value"]
        if key == "gain" and isinstance(value, (int, float)) and value < 0:
            node.reject_param(key, "gain must be >= 0")
            write({"rejected": key, "params": dict(node.params)})
            continue
        write({"param": key, "value": value, "params": dict(node.params)})
        if key == "crash":
            os._exit(1)  # dies while the daemon waits for its answer
        if key == "raise":
            raise ValueError(f"cannot apply raise={value}")
        if key == "block":
            unblock = Path(os.environ["UNBLOCK_FILE"])
            deadline = time.monotonic() + 120  # a bound if the test never unblocks it
            while not unblock.exists() and time.monotonic() < deadline:
                time.sleep(0.02)


if os.environ.get("NO_WITH"):
    serve(Node())  # closed by the interpreter's exit
else:
    with Node() as node:
        serve(node)
