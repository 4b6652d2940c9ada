"""The control request loop: the recoverable-error boundary of the daemon (SPEC 7.2).

Every request runs in its own task so a slow one (`wait`, `stop`) never holds up others.
Each message that arrives ends in exactly one log line: dropped (not a request at all),
refused (a bad request, or too many in flight), failed (a handler's error, answered),
or answered (at debug level). A request sent in parts (`daemon.model.parts`) is joined
first, a reply over 32 KiB is sent in parts; what is in flight is bounded in requests and
in bytes. Only the fatal list of
`daemon.model.errors` escapes, to the root nursery, which stops every node and exits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from daemon.control.registry import Handler
from daemon.model.errors import FATAL_ERRORS, BadRequest, RecoverableError
from daemon.model.parts import END, PartsJoiner, is_part, split_request
from daemon.model.protocol import (
    Decoded,
    Garbage,
    decode_request,
    encode_error,
    encode_reply,
)
from daemon.model.requests import Request
from daemon.run.runtime import Runtime
from daemon.run.zmq_trio import Frames, SocketOwner

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
# One connection holding many slow requests (`wait`) must not make everyone else's `ping`
# or `stop` answer busy: each connection gets a share of the whole.
MAX_IN_FLIGHT_PER_CLIENT = 32
# the requests in flight hold their bodies (a start's YAML, up to 1 MiB each): bounded too
MAX_IN_FLIGHT_BYTES = 16 << 20
EXPIRE_PARTS_S = 1.0


@attrs.define(eq=False)
class ControlServer:
    """Decodes requests from the control socket and runs their handlers."""

    owner: SocketOwner
    runtime: Runtime
    handlers: Mapping[type[Request[Any]], Handler]
    nursery: trio.Nursery
    hooks: bool = False  # FLOW_TEST_HOOKS=1: the test-only request types are accepted
    in_flight: int = 0
    in_flight_bytes: int = 0
    parts: PartsJoiner = attrs.field(factory=PartsJoiner)
    _per_client: dict[bytes, int] = attrs.field(factory=dict)

    async def expire_parts(self) -> None:
        """Forget, every EXPIRE_PARTS_S, the parts of requests whose sender went away."""
        while True:
            await trio.sleep(EXPIRE_PARTS_S)
            if dropped := self.parts.expire(trio.current_time()):
                log.warning("control: dropped %d requests left unfinished in parts", dropped)

    def on_message(self, frames: Frames) -> None:
        if len(frames) < 2:
            log.warning("control: dropped a message without an envelope")
            return
        envelope, payload = frames[:-1], frames[-1]
        if is_part(frames):
            envelope = frames[:-2]
            joined = self._join(envelope, frames[-1], last=frames[-2] == END)
            if joined is None:
                return
            payload = joined
        try:
            request = decode_request(payload, hooks=self.hooks)
        except Garbage as exc:
            log.warning("control: dropped %d bytes of garbage: %s", len(payload), exc)
            return
        except BadRequest as exc:
            request_id = getattr(exc, "request_id", None)
            log.warning("control: refused request %s: %s", request_id, exc)
            self._reply(envelope, encode_error(request_id, exc))
            return
        client = envelope[0]
        mine = self._per_client.get(client, 0)
        busy = self._busy(mine, len(payload))
        if busy is not None:
            log.warning("control: refused %s %s: %s", request.body.TYPE, request.id, busy)
            self._reply(envelope, encode_error(request.id, busy))
            return
        self.in_flight += 1
        self.in_flight_bytes += len(payload)
        self._per_client[client] = mine + 1
        self.nursery.start_soon(self._handle, envelope, request, len(payload))

    def _join(self, envelope: Frames, chunk: bytes, *, last: bool) -> bytes | None:
        """The whole request once its last part is here; a refusal is answered once."""
        try:
            return self.parts.add(envelope[0], chunk, last=last, now=trio.current_time())
        except BadRequest as exc:
            log.warning("control: refused a request in parts: %s", exc)
            self._reply(envelope, encode_error(None, exc))
            return None

    def _busy(self, mine: int, size: int) -> BadRequest | None:
        """Why one more request of `size` bytes cannot be taken now, if it cannot."""
        if self.in_flight >= MAX_IN_FLIGHT:
            return BadRequest(f"daemon busy: {MAX_IN_FLIGHT} requests in flight")
        if mine >= MAX_IN_FLIGHT_PER_CLIENT:
            limit = MAX_IN_FLIGHT_PER_CLIENT
            return BadRequest(f"daemon busy: {limit} requests in flight from this connection")
        if self.in_flight_bytes + size > MAX_IN_FLIGHT_BYTES:
            return BadRequest(f"daemon busy: {MAX_IN_FLIGHT_BYTES >> 20} MiB of requests in flight")
        return None

    async def _handle(self, envelope: Frames, request: Decoded, size: int) -> None:
        what = f"{request.body.TYPE} {request.id}"
        try:
            handler = self.handlers[type(request.body)]
            payload = encode_reply(request.id, await handler(self.runtime, request.body))
        except FATAL_ERRORS:
            raise
        except RecoverableError as exc:
            log.warning("control: %s failed: %s", what, exc)
            self._reply(envelope, encode_error(request.id, exc))
        except Exception as exc:
            # Not on the fatal list, so recoverable by definition (SPEC 7.2).
            log.exception("control: %s raised", what)
            internal = RecoverableError(f"internal error: {exc!r:.400}")
            self._reply(envelope, encode_error(request.id, internal))
        else:
            log.debug("control: %s answered", what)
            self._reply(envelope, payload)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= size
            client = envelope[0]
            left = self._per_client.pop(client) - 1
            if left:  # the map holds only connections with requests in flight: bounded
                self._per_client[client] = left

    def _reply(self, envelope: Frames, payload: bytes) -> None:
        # a large reply goes in parts as a large request does: libzmq then holds at most
        # two frames of 32 KiB for a client that does not read (its pipe and its writer)
        for message in split_request(payload):
            self.owner.send([*envelope, *message])
