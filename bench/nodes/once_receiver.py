"""Records its first message, then ends with its input (the upstream's end-of-stream:
see relay.py)."""

from common import Node, write_result

node = Node()
got = False
for event in node:
    if event["type"] == "INPUT" and not got:
        write_result({"received": 1})
        got = True
