"""The one error a node author catches: `NodeError`, with a one-line cause.

    NodeError              anything the SDK refuses or cannot do
    ├── SendTimeout        a backpressure receiver did not take a message in time
    ├── MessageTooLarge    a payload too large to send inline (and no shared memory for it)
    └── DaemonUnreachable  no `start` from the daemon within the start timeout

Each carries the ids it is about (output, input, endpoint) so the message names them.
"""

from __future__ import annotations


class NodeError(Exception):
    """Raised by the node SDK with a one-line cause."""


class SendTimeout(NodeError):
    """A send on a `backpressure` edge was not accepted within `FLOW_SEND_TIMEOUT`."""

    def __init__(self, output_id: str, receiver: str, timeout_s: float) -> None:
        self.output_id = output_id
        self.receiver = receiver
        self.timeout_s = timeout_s
        super().__init__(
            f"output {output_id!r}: receiver {receiver} did not take the message within "
            f"{timeout_s:g} s (backpressure; FLOW_SEND_TIMEOUT)"
        )


class MessageTooLarge(NodeError):
    """A message larger than receivers accept inline (`node_sdk.wire.MAX_FRAME_BYTES`)."""

    def __init__(self, output_id: str, nbytes: int, limit: int, metadata: bool = False) -> None:
        self.output_id = output_id
        self.nbytes = nbytes
        self.limit = limit
        if metadata:  # the header's part, which never goes through shared memory
            super().__init__(f"output {output_id!r}: metadata of {nbytes} bytes (as sent) is "
                             f"larger than the {limit} bytes a receiver accepts")  # fmt: skip
            return
        super().__init__(
            f"output {output_id!r}: a message of {nbytes} bytes is larger than the "
            f"{limit} bytes a receiver accepts inline (no shared-memory segment for it)"
        )


class DaemonUnreachable(NodeError):
    """The daemon did not answer `hello` with `start` in time."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        super().__init__(f"no start from the flow daemon at {endpoint} within {timeout_s:g} s")
