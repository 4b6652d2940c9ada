"""Forwards the first message it gets and exits (a link of the chain)."""

from common import Node, payload

node = Node()
for event in node:
    if event["type"] == "INPUT":
        node.send_output("out", payload(8), {"seq": 1, "t": 0, "p": 0})
        break
if hasattr(node, "close"):
    node.close()
