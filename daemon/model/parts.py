"""Control requests in small frames: a large request travels as parts the daemon joins.

libzmq holds, for every connection, the message in its pipe and the one it is decoding,
each allocated whole at the size its sender announces (measured: 1000 connections each
sending 1 MiB requests held 2 GiB with a receive HWM of 1, 3.5 GiB with 4). Only the size
of one frame bounds that, so no frame on the control socket is over CONTROL_FRAME_BYTES.
A request larger than that (a big dataflow's YAML, `--env` values) is sent as messages
`[PART, chunk]`, ..., `[END, chunk]` after the envelope; the daemon joins them within
one budget for all connections, so a flood of parts is refused `busy`, never held.
Replies over CONTROL_FRAME_BYTES travel the same way, for what libzmq holds of replies a
client has not read (`daemon.run.peer_outbox`); the client joins them.
"""

from __future__ import annotations

import attrs

from daemon.model.errors import BadRequest

# one request, whole or joined from its parts (daemon.model.protocol checks it too); here,
# not there, so the node channel's outbox does not import the whole control protocol
MAX_REQUEST_BYTES = 1 << 20
CONTROL_FRAME_BYTES = 32 << 10
PART = b"flow:part"
END = b"flow:end"
PARTS_BUDGET_BYTES = 16 << 20  # parts held for every connection together
STALE_S = 10.0  # a request whose next part does not come within this is dropped


def split_request(frame: bytes) -> list[list[bytes]]:
    """The messages (each after the envelope) that carry one request frame."""
    if len(frame) <= CONTROL_FRAME_BYTES:
        return [[frame]]
    size = CONTROL_FRAME_BYTES
    chunks = [frame[at : at + size] for at in range(0, len(frame), size)]
    return [[PART, chunk] for chunk in chunks[:-1]] + [[END, chunks[-1]]]


def is_part(frames: list[bytes]) -> bool:
    """A message that carries a part rather than a whole request (after its envelope)."""
    return len(frames) >= 3 and frames[-2] in (PART, END)


@attrs.define(eq=False)
class _Partial:
    """The parts of one request received so far from one connection."""

    chunks: list[bytes]
    size: int
    touched: float
    refused: bool = False  # refused once: later parts are swallowed until its END


@attrs.define(eq=False)
class PartsJoiner:
    """Joins each connection's parts into its request, all within one byte budget."""

    budget: int = PARTS_BUDGET_BYTES
    held: int = 0
    _partial: dict[bytes, _Partial] = attrs.field(factory=dict)

    def add(self, client: bytes, chunk: bytes, *, last: bool, now: float) -> bytes | None:
        """The whole request once its END arrives, else None.

        Raises BadRequest once for a request that grows past MAX_REQUEST_BYTES or past
        what the budget has left; the rest of its parts are then dropped quietly.
        """
        partial = self._partial.get(client)
        if partial is None:
            partial = self._partial[client] = _Partial(chunks=[], size=0, touched=now)
        partial.touched = now
        if partial.refused:
            if last:
                del self._partial[client]
            return None
        size = partial.size + len(chunk)
        problem = None
        if size > MAX_REQUEST_BYTES:
            problem = f"request too large (over {MAX_REQUEST_BYTES} bytes in parts)"
        elif self.held + len(chunk) > self.budget:
            problem = f"daemon busy: {self.budget >> 20} MiB of large requests being received"
        if problem is not None:
            self._forget(client, partial)
            if not last:
                self._partial[client] = _Partial(chunks=[], size=0, touched=now, refused=True)
            raise BadRequest(problem)
        partial.chunks.append(chunk)
        partial.size = size
        self.held += len(chunk)
        if not last:
            return None
        self._forget(client, partial)
        return b"".join(partial.chunks)

    def expire(self, now: float) -> int:
        """Drop the requests whose sender stopped sending parts; how many were dropped."""
        stale = [c for c, p in self._partial.items() if now - p.touched > STALE_S]
        for client in stale:
            self._forget(client, self._partial[client])
        return len(stale)

    def _forget(self, client: bytes, partial: _Partial) -> None:
        self.held -= partial.size
        del self._partial[client]
