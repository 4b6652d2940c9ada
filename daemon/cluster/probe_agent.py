"""A machine's side of `flow doctor --cluster`: its probe receivers and senders, in threads.

`LocalProber` runs them on this machine (the coordinator uses it for its own side of a
link); `ProbeAgent` is a member's: it takes the coordinator's `ProbeListen` and `ProbeSend`
over the cluster link, checks them, and answers each with one `ProbeReport`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio

from daemon.cluster.keys import KeyPair
from daemon.cluster.link import Timing, free_ports
from daemon.cluster.probe import Measured, ProbeFailed, Receiver, security, send_probe
from daemon.model import cluster_messages as msg
from daemon.model.cluster import is_z85_key
from daemon.model.cluster_probe import MAX_LARGE_BYTES, MAX_TIMEOUT_S, SMALL_BYTES, answers_within

log = logging.getLogger(__name__)

MAX_RECEIVERS: Final = 8  # live probe receivers on a member at once; more are refused
INBOX: Final = 32
Request = msg.ProbeListen | msg.ProbeSend


@attrs.define(eq=False)
class LocalProber:
    """Probe sockets on this machine, with its keys (the same files its nodes use)."""

    home: Path
    keys: KeyPair
    timing: Timing

    async def listen(self, nursery: trio.Nursery, host: str, sender_key: str, wait_s: float,
                     stop: threading.Event,
                     closed: Callable[[], None] = lambda: None) -> int:  # fmt: skip
        """Bind a receiver on a port reserved on `host`, admitting `sender_key` only; it
        serves in `nursery` until done, `wait_s` or `stop`, then calls `closed`. Its port;
        ProbeFailed."""
        try:
            port = free_ports(host, 1)[0]
        except OSError as exc:
            raise ProbeFailed(f"cannot reserve a tcp port on {host}: {exc.strerror or exc}"
                              ) from None  # fmt: skip
        tcp = security(self.home, self.keys, self.timing, (sender_key,))
        receiver = await trio.to_thread.run_sync(Receiver, tcp, f"tcp://{host}:{port}")
        nursery.start_soon(_serve, receiver, wait_s, stop, closed)
        return port

    async def send(self, endpoint: str, server_key: str, large: int,
                   timeout_s: float) -> Measured:  # fmt: skip
        """The probe's messages to `endpoint` (bounded by their timeouts); ProbeFailed."""
        tcp = security(self.home, self.keys, self.timing, ())
        return await trio.to_thread.run_sync(send_probe, tcp, endpoint, server_key, large,
                                             timeout_s, abandon_on_cancel=True)  # fmt: skip


async def _serve(receiver: Receiver, wait_s: float, stop: threading.Event,
                 closed: Callable[[], None]) -> None:  # fmt: skip
    try:
        await trio.to_thread.run_sync(receiver.serve, wait_s, stop, abandon_on_cancel=True)
    finally:
        stop.set()  # cancelled (the daemon stopping): the thread closes at its next poll
        closed()


def _seconds(text: str, most: float) -> float | None:
    """A duration from a probe message, or None unless in (0, most]."""
    try:
        value = float(text) if len(text) <= 20 else 0.0
    except ValueError:
        return None
    return value if 0 < value <= most else None


@attrs.define(eq=False)
class ProbeAgent:
    """A member's probe requests, handled one task each; `serve` runs them."""

    local: LocalProber
    report: Callable[[msg.ProbeReport], bool]  # to the coordinator; False when the link is down
    receivers: int = 0
    _inbox: tuple[trio.MemorySendChannel[Request], trio.MemoryReceiveChannel[Request]] = (
        attrs.field(factory=lambda: trio.open_memory_channel[Request](INBOX)))  # fmt: skip

    def on_request(self, request: Request) -> None:
        """From the link's task: never blocks (a flood past the inbox is dropped)."""
        try:
            self._inbox[0].send_nowait(request)
        except trio.WouldBlock:
            log.warning("cluster: a link probe request was dropped (%d waiting)", INBOX)

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            async for request in self._inbox[1]:
                nursery.start_soon(self._handle, nursery, request)

    async def _handle(self, nursery: trio.Nursery, request: Request) -> None:
        try:
            if isinstance(request, msg.ProbeListen):
                port = await self._listen(nursery, request)
                self.report(msg.ProbeReport(request.probe, port=str(port)))
            else:
                measured = await self._send(request)
                self.report(msg.ProbeReport(request.probe, small_s=f"{measured.small_s:.6f}",
                                            large_s=f"{measured.large_s:.6f}"))  # fmt: skip
        except ProbeFailed as exc:
            small = "" if exc.small_s is None else f"{exc.small_s:.6f}"
            self.report(msg.ProbeReport(request.probe, small_s=small, error=str(exc)[:900]))

    async def _listen(self, nursery: trio.Nursery, request: msg.ProbeListen) -> int:
        wait_s = _seconds(request.wait_s, answers_within(MAX_TIMEOUT_S))
        if wait_s is None or not is_z85_key(request.sender_key):
            raise ProbeFailed("a malformed probe request (wait or key)")
        if self.receivers >= MAX_RECEIVERS:
            raise ProbeFailed(f"{MAX_RECEIVERS} probe receivers are open here already")
        self.receivers += 1
        try:
            return await self.local.listen(nursery, request.host, request.sender_key, wait_s,
                                           threading.Event(), self._closed)  # fmt: skip
        except BaseException:
            self.receivers -= 1
            raise

    def _closed(self) -> None:
        self.receivers -= 1

    async def _send(self, request: msg.ProbeSend) -> Measured:
        timeout_s = _seconds(request.timeout_s, MAX_TIMEOUT_S)
        large = int(request.large) if request.large.isdigit() and len(request.large) <= 9 else 0
        if (timeout_s is None or not SMALL_BYTES <= large <= MAX_LARGE_BYTES
                or not request.endpoint.startswith("tcp://")
                or not is_z85_key(request.server_key)):  # fmt: skip
            raise ProbeFailed("a malformed probe request (endpoint, key, size or timeout)")
        return await self.local.send(request.endpoint, request.server_key, large, timeout_s)
