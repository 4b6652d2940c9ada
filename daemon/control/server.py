"""The control request loop: the recoverable-error boundary of the daemon (SPEC 7.2).

Every request runs in its own task so a slow one (`wait`, `stop`) never holds up others. A
`RecoverableError`, or any exception not on the fatal list, is answered to the client and
logged; a `FatalError` propagates to the root nursery, which stops every node and exits.
"""

from __future__ import annotations

import logging

import attrs
import trio

from daemon.control.handlers import Handler
from daemon.errors import BadRequest, FatalError, RecoverableError
from daemon.model.protocol import Garbage, Request, decode_request, encode_error, encode_reply
from daemon.run.runtime import Runtime
from daemon.run.zmq_trio import Frames, SocketOwner

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256


@attrs.define(eq=False)
class ControlServer:
    """Decodes requests from the control socket and runs their handlers."""

    owner: SocketOwner
    runtime: Runtime
    handlers: dict[str, Handler]
    nursery: trio.Nursery
    in_flight: int = 0
    answered: int = 0

    def on_message(self, frames: Frames) -> None:
        if len(frames) < 2:
            log.warning("control: dropped a message without an envelope")
            return
        envelope, payload = frames[:-1], frames[-1]
        try:
            request = decode_request(payload, frozenset(self.handlers))
        except Garbage as exc:
            log.warning("control: dropped %d bytes of garbage: %s", len(payload), exc)
            return
        except BadRequest as exc:
            request_id = getattr(exc, "request_id", None)
            log.warning("control: refused request %s: %s", request_id, exc)
            self._reply(envelope, encode_error(request_id, exc))
            return
        if self.in_flight >= MAX_IN_FLIGHT:
            busy = BadRequest(f"daemon busy: {MAX_IN_FLIGHT} requests in flight")
            self._reply(envelope, encode_error(request.id, busy))
            return
        self.in_flight += 1
        self.nursery.start_soon(self._handle, envelope, request)

    async def _handle(self, envelope: Frames, request: Request) -> None:
        try:
            body = await self.handlers[request.type](self.runtime, request.body)
        except FatalError:
            raise
        except RecoverableError as exc:
            log.warning("control: %s %s failed: %s", request.type, request.id, exc)
            self._reply(envelope, encode_error(request.id, exc))
        except Exception as exc:
            # Not on the fatal list, so recoverable by definition (SPEC 7.2).
            log.exception("control: %s %s raised", request.type, request.id)
            self._reply(
                envelope, encode_error(request.id, RecoverableError(f"internal error: {exc!r}"))
            )
        else:
            self._reply(envelope, encode_reply(request.id, body))
        finally:
            self.in_flight -= 1

    def _reply(self, envelope: Frames, payload: bytes) -> None:
        self.answered += 1
        self.owner.send([*envelope, payload])
