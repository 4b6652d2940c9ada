"""The control request loop: the recoverable-error boundary of the daemon (SPEC 7.2).

Every request runs in its own task so a slow one (`wait`, `stop`) never holds up others.
Each message that arrives ends in exactly one log line: dropped (not a request at all),
refused (a bad request, or too many in flight), failed (a handler's error, answered),
or answered (at debug level). Only the fatal list of `daemon.model.errors` escapes, to the root
nursery, which stops every node and exits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from daemon.control.registry import Handler
from daemon.model.errors import FATAL_ERRORS, BadRequest, RecoverableError
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


@attrs.define(eq=False)
class ControlServer:
    """Decodes requests from the control socket and runs their handlers."""

    owner: SocketOwner
    runtime: Runtime
    handlers: Mapping[type[Request[Any]], Handler]
    nursery: trio.Nursery
    hooks: bool = False  # FLOW_TEST_HOOKS=1: the test-only request types are accepted
    in_flight: int = 0
    _per_client: dict[bytes, int] = attrs.field(factory=dict)

    def on_message(self, frames: Frames) -> None:
        if len(frames) < 2:
            log.warning("control: dropped a message without an envelope")
            return
        envelope, payload = frames[:-1], frames[-1]
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
        if self.in_flight >= MAX_IN_FLIGHT or mine >= MAX_IN_FLIGHT_PER_CLIENT:
            limit = MAX_IN_FLIGHT if self.in_flight >= MAX_IN_FLIGHT else MAX_IN_FLIGHT_PER_CLIENT
            where = "" if self.in_flight >= MAX_IN_FLIGHT else " from this connection"
            busy = BadRequest(f"daemon busy: {limit} requests in flight{where}")
            log.warning("control: refused %s %s: %s", request.body.TYPE, request.id, busy)
            self._reply(envelope, encode_error(request.id, busy))
            return
        self.in_flight += 1
        self._per_client[client] = mine + 1
        self.nursery.start_soon(self._handle, envelope, request)

    async def _handle(self, envelope: Frames, request: Decoded) -> None:
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
            client = envelope[0]
            left = self._per_client.pop(client) - 1
            if left:  # the map holds only connections with requests in flight: bounded
                self._per_client[client] = left

    def _reply(self, envelope: Frames, payload: bytes) -> None:
        self.owner.send([*envelope, payload])
