"""`Node.send_output_raw`: a send buffer handed out before it is sent (dora's `SampleHandler`).

The buffer is the one `Node.send_output_buffer` writes in place (a shared-memory segment at
or above the threshold). What is tracked is every view taken of it, so `send()` is refused,
with the handler still sendable, while a memoryview, numpy array or struct view of it is
alive, and receivers never read memory a writer still holds. Python 3.12 and later: the
handler's `SampleBuffer` is a buffer exporter of its own (PEP 688), counting the views and
refusing new ones with BufferError once sent, as dora's. Python 3.11 has no Python-level
exporter: the buffer is a `pickle.PickleBuffer`, which forwards each consumer's request to
one root memoryview, so every view counts as an export of that root and `release()`
refuses while one is alive; a view asked of it after the send is ValueError there.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from types import TracebackType
from typing import Any

OPEN_VIEWS = (
    "buffer view(s) still open: release every memoryview and delete every numpy array "
    "made of the buffer before send()"
)
GONE = "the sample was sent or dropped: its buffer is gone"


class SampleBuffer:
    """The buffer of a `SampleHandler` (Python 3.12+): every view of it is counted."""

    __slots__ = ("_root", "valid", "views")

    def __init__(self, root: memoryview) -> None:
        self._root = root
        self.views = 0
        self.valid = True

    def __buffer__(self, flags: int) -> memoryview:
        if not self.valid:
            raise BufferError(GONE)
        self.views += 1
        return self._root[:]

    def __release_buffer__(self, view: memoryview) -> None:
        self.views -= 1
        view.release()


COUNTS_VIEWS = sys.version_info >= (3, 12)  # PEP 688: a class can export a buffer


class SampleHandler:
    """A buffer of one output, sent once by `send()` or at the end of a `with` block."""

    def __init__(self, sending: contextlib.AbstractContextManager[memoryview]) -> None:
        self._sending = sending  # the sender's send_buffer, entered: its exit sends
        self._root = sending.__enter__()
        self._buffer: Any = SampleBuffer(self._root) if COUNTS_VIEWS else pickle.PickleBuffer(
            self._root
        )
        self._sent = False

    def _check(self) -> Any:
        if self._sent:
            raise RuntimeError("the sample has already been sent: no view of it any more")
        return self._buffer

    def as_buffer(self) -> Any:
        """The buffer itself (the same object on every call): give it to numpy or struct."""
        return self._check()

    def as_memoryview(self) -> memoryview:
        """A new writable memoryview of the buffer; release it before `send()`."""
        return memoryview(self._check())

    def send(self) -> None:
        """Send the buffer; RuntimeError if it was sent already or a view is still open."""
        if self._sent:
            raise RuntimeError("the sample has already been sent")
        buffer = self._buffer
        if COUNTS_VIEWS:
            if buffer.views:
                raise RuntimeError(OPEN_VIEWS)
            buffer.valid = False
        else:
            buffer.release()  # the handler's own export of the root: now only consumers'
            try:
                self._root.release()
            except BufferError:
                self._buffer = pickle.PickleBuffer(self._root)  # sendable once released
                raise RuntimeError(OPEN_VIEWS) from None
        self._sent = True
        self._sending.__exit__(None, None, None)

    def __enter__(self) -> Any:
        return self.as_buffer()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # an exception in the block sends nothing and leaves the handler sendable
        if kind is None:
            self.send()

    def __del__(self) -> None:
        # never sent: no new view of the buffer; the segment goes back to the pool when
        # the sender's generator is collected (it closes with GeneratorExit)
        if getattr(self, "_sent", True):
            return
        buffer = self._buffer
        if COUNTS_VIEWS:
            buffer.valid = False
        else:
            buffer.release()
