"""The daemon's telemetry: `/metrics` over HTTP (`flow up --metrics ADDR:PORT`), and OTLP.

Served by trio in the daemon's own loop, not by prometheus_client's server thread: that
server starts a thread per connection, so a flood of scrapes would be a flood of threads
in the daemon. Here one task refreshes the page once a second (the samples of
daemon/model/metrics.py, written in Prometheus' text format by prometheus_client), and a
scrape only sends those bytes: at most MAX_CLIENTS connections at a time (more are closed
at once), each with HEAD_S to send its request head (of at most MAX_HEAD bytes) and CLIENT_S
in all to read the page. A connection costs a task and a socket, so the cap is wide and the
head's bound short: idle connections that hold a scrape slot each are cut within 2 s, and
it takes dozens of them at once to keep a scraper out. A scrape never touches the runs or
the store. The same samples are what `--otlp` pushes (daemon/run/otlp.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Final

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from daemon.model import metrics as model
from daemon.model.descriptor_model import OutputRef
from daemon.model.errors import ControlSocketUnavailable
from daemon.model.pids import CpuSample, cpu_percent, rss_bytes
from daemon.run.runtime import Runtime

log = logging.getLogger(__name__)

REFRESH_S: Final = 1.0  # nodes report once a second
MAX_CLIENTS: Final = 64
HEAD_S: Final = 2.0  # a scraper sends its request at once; an idle connection goes
CLIENT_S: Final = 5.0
MAX_HEAD: Final = 8192
PREFIX: Final = "flow_"


def _response(status: str, body: bytes, kind: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


BUSY: Final = _response("503 Service Unavailable", b"too many scrapes at once\n")
NOT_FOUND: Final = _response("404 Not Found", b"flow serves /metrics only\n")
BAD: Final = _response("400 Bad Request", b"bad request\n")
LATE: Final = _response("408 Request Timeout", f"no request within {HEAD_S:g} s\n".encode())
EXPOSITION: Final = "text/plain; version=0.0.4; charset=utf-8"


class _Families:
    """A prometheus_client collector that gives the families built at the last refresh."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def families(samples: list[model.Sample]) -> list[Metric]:
    """Samples -> one metric family per name, in the order the names first come."""
    made: dict[str, Metric] = {}
    for sample in samples:
        family = made.get(sample.name)
        if family is None:
            kind = CounterMetricFamily if sample.name in model.COUNTERS else GaugeMetricFamily
            labels = [key for key, _ in sample.labels]
            family = made[sample.name] = kind(
                PREFIX + sample.name, model.HELP.get(sample.name, sample.name), labels=labels
            )
        family.add_metric([value for _, value in sample.labels], sample.value)  # type: ignore[attr-defined]
    return list(made.values())


@attrs.define(eq=False)
class MetricsServer:
    """The page and the connections; one per daemon."""

    rt: Runtime
    page: bytes = b""
    samples: list[model.Sample] = attrs.field(factory=list)  # replaced whole: OTLP reads it
    clients: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(MAX_CLIENTS))
    cpu_before: dict[int, CpuSample] = attrs.field(factory=dict)
    _collector: _Families = attrs.field(factory=_Families)
    _registry: CollectorRegistry = attrs.field(
        factory=lambda: CollectorRegistry(auto_describe=False)
    )

    def __attrs_post_init__(self) -> None:
        self._registry.register(self._collector)

    async def serve(
        self,
        address: model.MetricsAddress | None,
        otlp: str | None,
        *,
        task_status: trio.TaskStatus[str | None],
    ) -> None:
        """Listen on `address` and push to `otlp`; `started` with the page's URL. A port
        that cannot be had is fatal at start (`flow up --metrics` said where to serve: not
        serving is no success), as is `--otlp` without the `otlp` extra."""
        listeners: list[trio.SocketListener] = []
        url = None
        if address is not None:
            try:
                listeners = await trio.open_tcp_listeners(
                    address.port, host=address.host.strip("[]")
                )
            except OSError as exc:
                raise ControlSocketUnavailable(
                    f"metrics: cannot listen on {address}: {exc}"
                ) from exc
            url = f"http://{address.host}:{listeners[0].socket.getsockname()[1]}/metrics"
        self.refresh()
        pusher = None
        if otlp is not None:
            from daemon.run.otlp import OtlpPush  # the optional extra: imported only then

            pusher = OtlpPush(otlp, lambda: self.samples)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._refresh_forever)
                task_status.started(url)
                if listeners:
                    log.info("metrics served at %s", url)
                    await trio.serve_listeners(self._client, listeners)
        finally:
            if pusher is not None:
                await pusher.close()

    async def _refresh_forever(self) -> None:
        while True:
            await trio.sleep(REFRESH_S)
            self.refresh()

    def refresh(self) -> None:
        """Take the samples of the runs as they are now, and build the page from them."""
        self.samples = model.samples(self._facts())
        self._collector.families = families(self.samples)
        self.page = _response("200 OK", generate_latest(self._registry), EXPOSITION)

    def _facts(self) -> Iterator[model.NodeFacts]:
        now = time.monotonic()
        before, self.cpu_before = self.cpu_before, {}
        for run in list(self.rt.runs.values()):
            for slot in list(run.slots.values()):
                if slot.id in run.removed:
                    continue
                cpu = rss = None
                running = slot.pid is not None and (slot.alive or slot.attached)
                if running and slot.pid is not None:
                    cpu = cpu_percent(slot.pid, now, before, self.cpu_before)
                    rss = rss_bytes(slot.pid)
                sources = {
                    spec.id: str(spec.source) if isinstance(spec.source, OutputRef)
                    else spec.source.spec
                    for spec in slot.spec.inputs
                }  # fmt: skip
                yield model.NodeFacts(
                    run=run.id, run_name=run.name or "", node=slot.id, running=running,
                    restarts=slot.restarts, cpu_percent=cpu, rss_bytes=rss, sources=sources,
                    stats=slot.current_stats,
                )  # fmt: skip

    async def _client(self, stream: trio.SocketStream) -> None:
        """One scrape: bounded in number, time and request size; errors stay here."""
        gone = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
        try:
            with contextlib.suppress(*gone):  # the scraper went away: nothing to tell it
                await self._serve(stream)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            self.clients.acquire_nowait()
        except trio.WouldBlock:
            with trio.move_on_after(0.5):
                await stream.send_all(BUSY)
            return
        try:
            with trio.move_on_after(CLIENT_S):
                answer = LATE
                with trio.move_on_after(HEAD_S):
                    answer = await self._answer(stream)
                await stream.send_all(answer)
        finally:
            self.clients.release()

    async def _answer(self, stream: trio.SocketStream) -> bytes:
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            chunk = await stream.receive_some(MAX_HEAD)
            if not chunk:
                return BAD
            head += chunk
            if len(head) > MAX_HEAD:
                return BAD
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return BAD
        path = parts[1].split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            return NOT_FOUND
        page = self.page
        if parts[0] == b"HEAD":
            return page[: page.index(b"\r\n\r\n") + 4]
        return page


async def serve_telemetry(
    rt: Runtime,
    address: model.MetricsAddress | None,
    otlp: str | None,
    *,
    task_status: trio.TaskStatus[str | None],
) -> None:
    """`flow up --metrics` / `--otlp`: serve until cancelled; `started` with the URL."""
    server = MetricsServer(rt)
    await server.serve(address, otlp, task_status=task_status)
