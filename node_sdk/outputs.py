"""A sender's outputs and their edges: the state send.py precomputes once for each.

An edge is one (output, receiving input) pair with its own socket and sequence numbers;
an output holds its edges (a list replaced, never changed in place: wiring.py), the
header extras its messages share, and what it sent.
"""

from __future__ import annotations

from typing import Any

import zmq

from node_sdk.layouts import Layouts
from node_sdk.wire import encode_extra, metadata_extra, source_tail, validate_metadata


class SendEdge:
    """Send-side state of one (output, receiving input) pair, precomputed once."""

    __slots__ = ("backpressure", "credits", "endpoint", "first_flags", "gone", "last_flags",
                 "link", "node", "packed_flags", "receiver", "seq", "sock")  # fmt: skip

    def __init__(
        self, sock: zmq.Socket[Any], receiver: str, backpressure: bool, window: int,
        endpoint: str = "", link: Any = None,
    ) -> None:  # fmt: skip
        self.sock = sock
        self.receiver = receiver
        self.node = receiver.partition("/")[0]  # what the daemon's `receiver_down` names
        self.gone = False  # given up (its receiver ended for good): closed, sends skip it
        self.endpoint = endpoint  # live `unwire` finds the edge by it
        self.backpressure = backpressure
        self.credits = window  # backpressure: messages the receiver has room for
        self.link = link  # tcp.Reconnects of a tcp:// backpressure edge, else None
        # drop_oldest never blocks; backpressure blocks up to SNDTIMEO (set on the socket)
        self.first_flags = zmq.SNDMORE if backpressure else zmq.SNDMORE | zmq.NOBLOCK
        self.last_flags = 0 if backpressure else zmq.NOBLOCK
        self.packed_flags = self.last_flags  # a packed message is one frame
        self.seq = 0


class Output:
    """One output of a node: its edges, its header extras made once, and its counters.

    `sent` and `bytes` count each message the node sent once, however many edges it went
    out on (one more receiver, an observer or a recorder, must not change them); a message
    that went out on none (no receiver, or every edge dropped it) is not sent. `dropped`
    counts per edge: a message that two full queues refused is two. Plain ints, read
    racily by the receiver thread for the `stats` report.
    """

    __slots__ = ("bytes", "dropped", "edges", "id", "layouts", "plain_extra", "sent", "source",
                 "source_tail")  # fmt: skip

    def __init__(self, output_id: str, source: str, edges: list[SendEdge]) -> None:
        self.id = output_id
        self.source = source
        self.plain_extra = encode_extra(source)  # the header extra when no metadata
        self.source_tail = source_tail(source)  # the end of one with metadata
        self.layouts = Layouts(source)  # numpy arrays: the extra per (dtype, shape)
        self.edges = edges
        self.sent = 0
        self.bytes = 0  # payload bytes of the messages `sent` counts
        self.dropped = 0

    def extra(self, metadata: dict[str, Any] | None, fields: dict[str, Any] | None) -> bytes:
        """The header extra of one message (validating `metadata`; NodeError names a key)."""
        if not metadata:
            return self.plain_extra if not fields else encode_extra(self.source, None, fields)
        if fields is None:
            return metadata_extra(self.source_tail, metadata)
        return encode_extra(self.source, validate_metadata(metadata), fields)
