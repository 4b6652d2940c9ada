"""Parameters on the node's side: `node.params`, PARAM events and their answers.

The daemon sends each parameter as a `param` message: the current values before `start`
(they fill `node.params`, no event), and every `flow param set|delete` after, as a PARAM
event that the daemon waits to hear answered. The receiver thread queues the event; the
node's thread, when it hands the event out, asks the validator, applies the value and
answers once user code comes back for the next event (or closes): taken, or refused with
the reason given to `reject_param` meanwhile, in which case the old value is put back.
A node that closes on an exception raised meanwhile (`with Node()` left by it, or the
interpreter's exit after an uncaught one) refuses the change with that exception's line. An
event read after the daemon stopped waiting is dropped unseen and never applied, so what
`flow param get` says and what the node holds do not part.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from node_sdk import channel
from node_sdk.errors import NodeError
from node_sdk.events import Event, EventType
from node_sdk.strictjson import loads

log = logging.getLogger(__name__)

MAX_DEPTH: Final = 16
MAX_REASON: Final = 1000  # characters of an exception's first line sent as a refusal
_ABSENT: Final = object()

Validator = Callable[[str, Any], "str | None"]
"""(key, value) -> None to take the value, or the reason to refuse it (value None: deleted)."""


class Params:
    """The node's parameter values and the one change being handled; node thread, except
    `receive` (receiver thread, or the node's before `start`)."""

    __slots__ = ("_arrived", "answer", "handling", "validator", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.validator: Validator | None = None
        self.answer: Callable[[bytes], None] = lambda frame: None  # to the daemon, once open
        # (token, deadline, key, present, value, why it is malformed) of each queued PARAM
        # event, in event order
        self._arrived: deque[tuple[int, float, str, bool, Any, str | None]] = deque()
        # (token, key, old value or _ABSENT) of the event handed out and not yet answered
        self.handling: tuple[int, str, Any] | None = None

    def receive(self, message: channel.Param) -> Event | None:
        """A `param` message -> the PARAM event to queue, or None (a current value, set now).

        Never answers the daemon itself: this may run in the receiver thread, and the
        answer goes through the node thread's end of their PAIR (`take` answers)."""
        value, malformed = None, None
        try:
            if message.value is not None:
                value = loads(message.value, f"parameter {message.key!r}", max_bytes=1 << 20,
                              max_depth=MAX_DEPTH)  # fmt: skip
        except NodeError as exc:
            log.warning("dropped a parameter from the daemon: %s", exc)
            malformed = f"malformed value: {exc}"
        if not message.token:
            if malformed is None:
                self._apply(message.key, message.value is not None, value)
            return None
        deadline = time.monotonic() + message.timeout_ms / 1000
        present = message.value is not None
        self._arrived.append((message.token, deadline, message.key, present, value, malformed))
        return Event(EventType.PARAM, message.key, value)

    def take(self, event: Event) -> Event | None:
        """The PARAM event the node's thread is about to hand out, or None when it must not
        be (refused by the validator, or too late: the daemon no longer waits)."""
        token, deadline, key, present, value, malformed = self._arrived.popleft()
        if time.monotonic() > deadline:
            log.warning("parameter %r came too late to be applied (set it again)", key)
            return None
        if malformed is not None:
            self.answer(_ack(token, malformed))
            return None
        if self.validator is not None:
            try:
                reason = self.validator(key, value if present else None)
            except Exception as exc:  # a validator that raises refuses, with its message
                reason = str(exc) or type(exc).__name__
            if reason is not None:
                self.answer(_ack(token, str(reason)))
                return None
        self.handling = (token, key, self.values.get(key, _ABSENT))
        self._apply(key, present, value)
        return event

    def settle(self, error: BaseException | None = None) -> None:
        """The handled change is taken: say so (the node came back for more, or closes);
        not if the node closes on `error`, an exception from its handling: refused then."""
        if self.handling is None:
            return
        if isinstance(error, SystemExit) and error.code in (0, None):
            error = None  # a clean exit: the change was handled
        if error is not None:
            said = f"{type(error).__name__}: {error}".splitlines()[0][:MAX_REASON]
            self.reject(self.handling[1], f"the node raised {said}")
            return
        token = self.handling[0]
        self.handling = None
        self.answer(_ack(token, None))

    def reject(self, key: str, reason: str) -> None:
        """Refuse the change being handled: the old value is back, the daemon hears why."""
        handling = self.handling
        if handling is None or handling[1] != key:
            raise NodeError(f"reject_param({key!r}): no PARAM event for {key!r} is being handled")
        token, _, old = handling
        self.handling = None
        self._apply(key, old is not _ABSENT, old)
        self.answer(_ack(token, reason or "refused"))

    def _apply(self, key: str, present: bool, value: Any) -> None:
        if present:
            self.values[key] = value
        else:
            self.values.pop(key, None)


def _ack(token: int, error: str | None) -> bytes:
    return channel.encode(channel.ParamAck(token, None if error is None else error[:4000]))


class ParamSurface:
    """`node.params`, `reject_param` and `set_param_validator` on `Node` (a mixin)."""

    _params: Params

    @property
    def params(self) -> Mapping[str, Any]:
        """The node's current parameter values (read-only; they change with PARAM events)."""
        return MappingProxyType(self._params.values)

    def reject_param(self, key: str, reason: str) -> None:
        """While handling the PARAM event of `key`: refuse its value; `flow param set` then
        fails with `reason` and `node.params` holds the old value again."""
        self._params.reject(key, reason)

    def set_param_validator(self, validator: Validator | None) -> None:
        """Ask `validator(key, value)` before each PARAM event is handed out: None takes the
        value, a string (or an exception) refuses it and the event never comes."""
        self._params.validator = validator
