"""Does nothing until stopped (its RSS is measured); writes its pid first."""

import os

from common import Node

node = Node()
with open(os.environ["BENCH_OUT"], "w") as out:
    out.write(str(os.getpid()))
for event in node:
    if event["type"] == "STOP":
        break
