"""Test node: leave two processes in sessions of their own, then serve until stopped.

One child calls `setsid()` and stays the node's child; another is double-forked (its
parent exits at once, so it is orphaned from the start). Their pids go to ESCAPER_FILE.
"""

import os
import time
from pathlib import Path

from node_sdk import Node


def escape(double: bool) -> int:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        if double and os.fork() != 0:
            os._exit(0)
        os.write(write, str(os.getpid()).encode())
        while True:
            time.sleep(1)
    os.close(write)
    pid = int(os.read(read, 32))
    os.close(read)
    if double:
        os.waitpid(child, 0)  # the middle process exited at once
    return pid


pids = [escape(double=False), escape(double=True)]
target = Path(os.environ["ESCAPER_FILE"])
target.with_suffix(".tmp").write_text(" ".join(map(str, pids)))
target.with_suffix(".tmp").rename(target)
with Node() as node:
    for _event in node:
        pass
