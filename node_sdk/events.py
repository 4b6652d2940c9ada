"""What a node receives: `Event`, `EventType` and `StopCause`."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """The kind of an event; a `str`, so dora's `event["type"] == "INPUT"` works."""

    INPUT = "INPUT"
    INPUT_CLOSED = "INPUT_CLOSED"
    INPUT_RECOVERED = "INPUT_RECOVERED"  # an input closed by its `input_timeout` hears again
    STOP = "STOP"
    ERROR = "ERROR"
    PARAM = "PARAM"  # a parameter changed: id is its key, value its value (docs/parameters.md)


class StopCause(StrEnum):
    """Why a `STOP` event came: it is the event's `id`."""

    STOP_REQUESTED = "STOP_REQUESTED"
    ALL_INPUTS_CLOSED = "ALL_INPUTS_CLOSED"


# The keys dora code reads through `event[...]`; `error` and `seq` only when they are set.
_ALWAYS = ("type", "id", "value", "metadata")
_ALWAYS_COUNT = len(_ALWAYS)
_FIELDS = {"type": 0, "id": 1, "value": 2, "metadata": 3, "error": 4, "seq": 5}
# dora's `event["kind"]`: "dora" for every event of the dataflow (dora's other kind,
# "external", is for events merged in from other streams, which flow does not do)
KIND = "dora"


class Event(tuple):  # type: ignore[type-arg]
    """One event; attributes, or mapping access (`event["value"]`) for dora code.

    A tuple underneath: immutable, and built several times faster than a frozen
    dataclass, which matters at hundreds of thousands of events a second.
    """

    __slots__ = ()

    def __new__(
        cls,
        type: EventType,
        id: str | None = None,
        value: Any = None,
        metadata: dict[str, Any] | None = None,
        error: str | None = None,
        seq: int | None = None,
    ) -> Event:
        return tuple.__new__(
            cls, (type, id, value, {} if metadata is None else metadata, error, seq)
        )

    @property
    def type(self) -> EventType:
        return tuple.__getitem__(self, 0)  # type: ignore[no-any-return]

    @property
    def id(self) -> str | None:
        """The input id (INPUT, INPUT_CLOSED), the `StopCause` (STOP) or the key (PARAM)."""
        return tuple.__getitem__(self, 1)  # type: ignore[no-any-return]

    @property
    def value(self) -> Any:
        return tuple.__getitem__(self, 2)

    @property
    def metadata(self) -> dict[str, Any]:
        return tuple.__getitem__(self, 3)

    @property
    def error(self) -> str | None:
        return tuple.__getitem__(self, 4)  # type: ignore[no-any-return]

    @property
    def seq(self) -> int | None:
        """The sender's sequence number of a data event."""
        return tuple.__getitem__(self, 5)  # type: ignore[no-any-return]

    @property
    def kind(self) -> str:
        return KIND

    def keys(self) -> tuple[str, ...]:
        extra = tuple(
            k for k in ("error", "seq") if tuple.__getitem__(self, _FIELDS[k]) is not None
        )
        return _ALWAYS + extra

    def __getitem__(self, key: Any) -> Any:
        # the hot path of dora code (`event["type"]`, `event["value"]`): one dict lookup
        index = _FIELDS.get(key) if isinstance(key, str) else None
        if index is not None:
            value = tuple.__getitem__(self, index)
            if index < _ALWAYS_COUNT or value is not None:
                return value
        elif key == "kind":
            return KIND
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self.keys() or key == "kind"

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={tuple.__getitem__(self, _FIELDS[k])!r}" for k in self.keys())
        return f"Event({parts})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Event, tuple(tuple.__getitem__(self, i) for i in range(6)))
