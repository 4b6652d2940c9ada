"""Exits after its first message."""

from common import Node, write_result

node = Node()
for event in node:
    if event["type"] == "INPUT":
        write_result({"received": 1})
        break
