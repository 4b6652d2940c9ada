"""Forwards the first message it gets, then ends with its input (a link of the chain).

It reads on to the upstream's end-of-stream rather than leaving at the first message: a
node gone from the other end of a connection leaves that end-of-stream undelivered, and
the upstream's close then waits for it for up to its linger (2 s in flow's SDK).
"""

from common import Node, payload

node = Node()
sent = False
for event in node:
    if event["type"] == "INPUT" and not sent:
        node.send_output("out", payload(8), {"seq": 1, "t": 0, "p": 0})
        sent = True
if hasattr(node, "close"):
    node.close()
