"""Test node: count its starts in SPAWN_FILE and append every value it gets to VALUES_FILE."""

import os
from pathlib import Path

from node_sdk import Node

with Node() as node:
    with Path(os.environ["SPAWN_FILE"]).open("a") as file:
        file.write(f"start {node.restart_count()}\n")
    with Path(os.environ["VALUES_FILE"]).open("a") as values:
        for event in node:
            if event["type"] == "INPUT":
                values.write(f"{event['value']}\n")
                values.flush()
            else:
                print(f"event {event['type']} {event['id']}", flush=True)
