"""`Node.send_output_raw`: a send buffer handed out before it is sent (dora's `SampleHandler`).

The buffer is the one `Node.send_output_buffer` writes in place (a shared-memory segment at
or above the threshold). What is tracked is every view taken of it: the handler's
`SampleBuffer` (a `pickle.PickleBuffer`) forwards each consumer's buffer request to one
root memoryview, so every live memoryview, numpy array or struct view made of it counts
as an export of that root, and `memoryview.release()` refuses while one is alive. `send()`
relies on exactly that: it is refused, with the handler still sendable, while a view is
open, so receivers never read memory a writer still holds.
"""

from __future__ import annotations

import contextlib
import pickle
from types import TracebackType
from typing import Any

OPEN_VIEWS = (
    "buffer view(s) still open: release every memoryview and delete every numpy array "
    "made of the buffer before send()"
)


class SampleHandler:
    """A buffer of one output, sent once by `send()` or at the end of a `with` block."""

    def __init__(self, sending: contextlib.AbstractContextManager[memoryview]) -> None:
        self._sending = sending  # the sender's send_buffer, entered: its exit sends
        self._root = sending.__enter__()
        self._buffer: pickle.PickleBuffer | None = pickle.PickleBuffer(self._root)
        self._sent = False

    def _check(self) -> pickle.PickleBuffer:
        if self._sent or self._buffer is None:
            raise RuntimeError("the sample has already been sent: no view of it any more")
        return self._buffer

    def as_buffer(self) -> pickle.PickleBuffer:
        """The buffer itself (the same object on every call): give it to numpy or struct."""
        return self._check()

    def as_memoryview(self) -> memoryview:
        """A new writable memoryview of the buffer; release it before `send()`."""
        return memoryview(self._check())

    def send(self) -> None:
        """Send the buffer; RuntimeError if it was sent already or a view is still open."""
        if self._sent:
            raise RuntimeError("the sample has already been sent")
        buffer = self._check()
        buffer.release()  # the handler's own export of the root: now only consumers hold it
        try:
            self._root.release()
        except BufferError:
            self._buffer = pickle.PickleBuffer(self._root)  # still sendable once released
            raise RuntimeError(OPEN_VIEWS) from None
        self._sent = True
        self._buffer = None
        self._sending.__exit__(None, None, None)

    def __enter__(self) -> pickle.PickleBuffer:
        return self.as_buffer()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # an exception in the block sends nothing and leaves the handler sendable
        if kind is None:
            self.send()

    def __del__(self) -> None:
        # never sent: views taken of the buffer stop working; the segment goes back to the
        # pool when the sender's generator is collected (it closes with GeneratorExit)
        buffer: Any = getattr(self, "_buffer", None)
        if buffer is not None:
            buffer.release()
