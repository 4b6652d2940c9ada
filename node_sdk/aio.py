"""Receiving and sending from async code, under asyncio or trio, without either in a plain node.

`Node.next` blocks, so the async calls run it in a worker thread, one call at a time: an
event a cancelled caller was waiting for is not lost, the next call gets it (the worker's
call is kept and awaited again). `send_output` may block too (backpressure), so sends have
a worker of their own. Neither asyncio nor trio is imported here: the running
one is found in `sys.modules`, where the caller's own import put it, so a node that never
awaits pays nothing (`tests/unit/test_node_aio.py` checks the import cost).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def running_library() -> str:
    """"asyncio" or "trio": which event loop runs the calling coroutine."""
    trio: Any = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    asyncio: Any = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return "asyncio"
    raise RuntimeError("the node's async calls need a running asyncio or trio event loop")


class Worker:
    """One thread that runs blocking calls in turn: a thread per event would cost more
    than the event. Receiving and sending have one each, so a send never queues behind a
    `recv_async` that waits for input. A daemon thread: it never holds the process open."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._calls.get().run()

    def submit(self, call: Callable[[], Any]) -> Pending:
        pending = Pending(call)
        self._calls.put(pending)
        return pending


class Pending:
    """One blocking call for a worker thread, and its result once done."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._call = call

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:  # handed to the awaiting caller, never lost here
            self.error = exc
        finally:
            self.done.set()
            with contextlib.suppress(RuntimeError):  # the loop has ended: nobody waits
                self.on_done()

    def on_done(self) -> None:
        """Wake the waiting coroutine (replaced by `wait`)."""

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


async def checkpoint() -> None:
    """Let the event loop run other tasks (and deliver a cancellation) once."""
    if running_library() == "trio":
        await sys.modules["trio"].lowlevel.checkpoint()
    else:
        await sys.modules["asyncio"].sleep(0)


async def wait(pending: Pending) -> Any:
    """The outcome of `pending`; a cancelled caller leaves it in flight for the next one."""
    if pending.done.is_set():
        return pending.outcome()
    if running_library() == "trio":
        trio: Any = sys.modules["trio"]
        token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        pending.on_done = lambda: token.run_sync_soon(event.set)  # type: ignore[method-assign]
        if not pending.done.is_set():
            await event.wait()
    else:
        asyncio: Any = sys.modules["asyncio"]
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        pending.on_done = lambda: loop.call_soon_threadsafe(wake)  # type: ignore[method-assign]
        if not pending.done.is_set():
            await asyncio.shield(future)
    return pending.outcome()
