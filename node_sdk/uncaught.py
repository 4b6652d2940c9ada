"""A `NodeError` nobody caught ends its node with one line naming where, not a traceback;
so does Ctrl-C in a dynamic node.

The SDK's errors already say what is wrong in one line ("no FLOW_NODE_CONFIG in the
environment: start this node with flow ..."); the traceback above it is the SDK's own
frames. What the author needs is their line that called it: `node.py:12: NodeError: ...`.
Any other exception prints as Python prints it, and `FLOW_DEBUG=1` prints a NodeError's
traceback too, as the CLI does for its errors.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

from node_sdk.errors import NodeError

_SDK = os.path.dirname(os.path.abspath(__file__))
_ctrl_c_node: str | None = None  # a dynamic node's id: Ctrl-C is one line for it


def quiet_ctrl_c(node_id: str) -> None:
    """A dynamic node is a script run from a terminal: Ctrl-C ends it with one line, not a
    traceback through the SDK's internals. Only the uncaught KeyboardInterrupt is quieted
    (the process still ends as Ctrl-C ends it: status 130), and only through this hook."""
    global _ctrl_c_node
    _ctrl_c_node = node_id


def install() -> None:
    """This hook for the process, unless another one than Python's is there already (an
    IDE's, a test runner's, the author's own)."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = excepthook


def excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """One line for an uncaught NodeError (or a dynamic node's Ctrl-C); Python's own
    report for anything else."""
    if isinstance(value, KeyboardInterrupt) and _ctrl_c_node is not None:
        print(f"node {_ctrl_c_node}: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return
    if not isinstance(value, NodeError) or os.environ.get("FLOW_DEBUG") == "1":
        sys.__excepthook__(kind, value, tb)
        return
    print(f"{_caller(tb)}{kind.__name__}: {value}", file=sys.stderr, flush=True)


def _caller(tb: TracebackType | None) -> str:
    """`file:line: ` of the innermost frame outside the SDK (the author's call), or ''."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(_SDK + os.sep)]
    if not frames:
        return ""
    return f"{frames[-1].filename}:{frames[-1].lineno}: "
