"""The parts of `Node` dora code calls besides the core: `log_*`, `send_output_raw`, async.

A mixin, so node.py stays the facade over the send and receive paths; everything here is
built on `Node.next`, `Node.send_output`, `Node.send_output_buffer` and `Node.log`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from node_sdk.events import Event, EventType

if TYPE_CHECKING:
    from node_sdk.aio import Pending, Worker
    from node_sdk.sample import SampleHandler

from node_sdk.logbridge import TRACE

SLICE_S = 0.1  # how long a worker's `next` waits before it looks whether the node closes


class DoraSurface:
    """dora's convenience methods, and flow's async ones, on top of the core `Node`."""

    _pending: Pending | None = None  # the blocking `next` a cancelled await left in flight
    _receiving: Worker | None = None  # the async calls' threads, started on first use
    _sending: Worker | None = None
    _closing = False

    if TYPE_CHECKING:
        timed_out: bool

        def log(self, level: int | str, message: str) -> None: ...

        def next(self, timeout: float | None = None) -> Event | None: ...

        def try_recv(self) -> Event | None: ...

        def send_output(
            self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
        ) -> None: ...

        def send_output_buffer(
            self, output_id: str, nbytes: int, metadata: dict[str, Any] | None = None
        ) -> contextlib.AbstractContextManager[memoryview]: ...

    # ------------------------------------------------------------ logging, as dora names it

    def log_error(self, message: str) -> None:
        self.log(logging.ERROR, message)

    def log_warn(self, message: str) -> None:
        self.log(logging.WARNING, message)

    def log_info(self, message: str) -> None:
        self.log(logging.INFO, message)

    def log_debug(self, message: str) -> None:
        self.log(logging.DEBUG, message)

    def log_trace(self, message: str) -> None:
        self.log(TRACE, message)

    # ------------------------------------------------------------ a buffer sent later

    def send_output_raw(
        self, output_id: str, data_len: int, metadata: dict[str, Any] | None = None
    ) -> SampleHandler:
        """A writable buffer of `data_len` bytes on `output_id`, sent by its `send()` or at
        the end of `with handler as buf:` (node_sdk/sample.py has the view rules)."""
        from node_sdk.sample import SampleHandler

        return SampleHandler(self.send_output_buffer(output_id, data_len, metadata))

    # ------------------------------------------------------------ async (asyncio or trio)

    async def recv_async(self, timeout: float | None = None) -> Event | None:  # noqa: ASYNC109
        """`next(timeout)` without blocking the event loop; a cancelled call loses nothing."""
        from node_sdk.aio import Worker, checkpoint, wait

        pending = self._pending
        if pending is None:
            # other tasks run (and a cancellation comes) here, before an event is taken
            await checkpoint()
            ready = self.try_recv()  # no thread hand-off while events are queued already
            if ready is not None:
                return ready
            if self._receiving is None:
                self._receiving = Worker("flow-node-recv-async")
            pending = self._pending = self._receiving.submit(lambda: self._next_sliced(timeout))
        try:
            event = await wait(pending)
        finally:
            if pending.done.is_set():
                self._pending = None
        return event  # type: ignore[no-any-return]

    def _next_sliced(self, timeout: float | None) -> Event | None:
        """`next(timeout)` in slices, so a worker left waiting by a cancelled call sees
        `close()` (no two threads on the node's sockets) within one slice."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_s = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
            event = self.next(max(wait_s, 0.0))
            if not self.timed_out or self._closing:
                return event
            if deadline is not None and time.monotonic() >= deadline:
                return event  # the caller's timeout: None, or dora's ERROR event

    def _end_async(self) -> None:
        """`close()` calls it first: a worker still in `next` returns within a slice."""
        self._closing = True
        pending = self._pending
        if pending is not None:
            pending.done.wait(2 * SLICE_S)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Every event until the stream ends; a STOP event is the last one it yields."""
        while (event := await self.recv_async()) is not None:
            yield event
            if event.type is EventType.STOP:
                return

    async def send_output_async(
        self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """`send_output` in a worker thread: waiting on a slow receiver's credits
        (backpressure) does not block the event loop."""
        from node_sdk.aio import Worker, wait

        if self._sending is None:
            self._sending = Worker("flow-node-send-async")
        await wait(self._sending.submit(lambda: self.send_output(output_id, data, metadata)))

