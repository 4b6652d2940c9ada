"""Sends one message and exits (start-to-first-message, and the head of the chain)."""

from common import Node, payload

node = Node()
node.send_output("out", payload(8), {"seq": 1, "t": 0, "p": 0})
if hasattr(node, "close"):
    node.close()
