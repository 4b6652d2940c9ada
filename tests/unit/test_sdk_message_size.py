"""Message size bounds on the data plane: the sender refuses, the input cuts off (row 26)."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from node_sdk.config import DataInput, Edge, NodeConfig
from node_sdk.errors import MessageTooLarge
from node_sdk.inputs import bind_input
from node_sdk.send import Sender
from node_sdk.wire import MAX_EXTRA_BYTES, MAX_FRAME_BYTES, MAX_INLINE_BYTES


def test_an_inline_payload_past_the_bound_raises_message_too_large(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path / 'in'}"
    cfg = NodeConfig(
        run="r", run_name=None, node="a", generation=1, restarts=0, daemon="ipc:///none",
        descriptor=None, config={}, inputs={},
        outputs={"out": (Edge(endpoint, "b", "in", "drop_oldest"),)},
        shm_threshold=0,  # no shared memory: every payload goes inline
    )  # fmt: skip
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sender = Sender(context, cfg, send_timeout_s=1.0)
        sender.connect()
        sender.send_output("out", b"x" * 1024)  # within bounds: sent
        with pytest.raises(MessageTooLarge, match="'out'"):
            sender.send_output("out", bytes(MAX_INLINE_BYTES + 1))
        # metadata past its own bound is said to be the metadata, whatever the payload's path
        sender._shm_threshold = 1 << 20  # shared memory for the large payload below
        for payload in (b"x", bytes(2 << 20)):
            with pytest.raises(MessageTooLarge, match=r"'out': metadata of \d+ bytes \(as "
                               r"sent\) is larger than the 1048576 bytes a receiver accepts$"):
                sender.send_output("out", payload, {"big": "y" * (MAX_EXTRA_BYTES + 1)})
        # a buffer asked for that could never be sent: refused before it is allocated
        with pytest.raises(MessageTooLarge, match="'out': a message of 4611686018427387904"), \
                sender.send_buffer("out", 1 << 62, None, None, None):  # fmt: skip
            pass
        for output in sender.outputs.values():
            for edge in output.edges:
                edge.sock.close(linger=0)
    finally:
        context.destroy(linger=0)


def test_every_input_socket_bounds_the_frames_it_takes(tmp_path: Path) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        for policy in ("drop_oldest", "backpressure"):
            spec = DataInput(id="in", endpoint=f"ipc://{tmp_path / policy}", policy=policy,
                             queue_size=10, sources=("a/out",))  # fmt: skip
            sock = bind_input(context, spec, rcvhwm=10)
            assert sock.getsockopt(zmq.MAXMSGSIZE) == MAX_FRAME_BYTES
            sock.close(linger=0)
    finally:
        context.destroy(linger=0)
