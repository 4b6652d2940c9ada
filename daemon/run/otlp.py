"""Pushing the telemetry samples over OTLP/HTTP (`flow up --otlp URL`; the `otlp` extra).

opentelemetry-sdk exports from its own reader thread, every OTEL_METRIC_EXPORT_INTERVAL
milliseconds (OpenTelemetry's variable; 60 s when unset). Its callbacks read only the
daemon's last list of samples (`MetricsServer.samples`, replaced whole by the trio loop
once a second), never the runs themselves, so the thread touches nothing the loop changes.
A collector that is down costs that thread its bounded export timeout; the loop never waits
for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import trio

from daemon.model import metrics as model
from daemon.model.errors import ControlSocketUnavailable

log = logging.getLogger(__name__)

# opentelemetry's exporter logs a warning per retry and an error per failed export: with a
# collector down, about 3 lines every interval, forever
EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
MAX_KINDS: Final = 64

EXPORT_TIMEOUT_MS: Final = 5000
SHUTDOWN_S: Final = 6.0  # the last export's timeout, and a little


class Doubling(logging.Filter):
    """Lets through the 1st, 2nd, 4th, 8th, ... line of each kind (its level and message
    template), each saying how many there were so far, as `param_ack` floods are logged
    (daemon/run/params.py)."""

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[tuple[int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, str(record.msg))
        if kind not in self._counts and len(self._counts) >= MAX_KINDS:
            self._counts.clear()  # bounded: a kind forgotten here starts over
        count = self._counts[kind] = self._counts.get(kind, 0) + 1
        if count & (count - 1):
            return False
        if count > 1:
            record.msg = f"{record.msg} [{count} so far]"
        return True


class OtlpPush:
    """A meter provider whose instruments observe the daemon's samples."""

    def __init__(self, endpoint: str, samples: Callable[[], list[model.Sample]]) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
        except ImportError as exc:
            raise ControlSocketUnavailable(
                f"--otlp needs the otlp extra: pip install 'flow-runtime[otlp]' ({exc})"
            ) from None
        self._samples = samples
        self._quieter = Doubling()
        logging.getLogger(EXPORTER_LOGGER).addFilter(self._quieter)
        exporter = OTLPMetricExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_MS / 1000)
        reader = PeriodicExportingMetricReader(exporter, export_timeout_millis=EXPORT_TIMEOUT_MS)
        self._provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "flow"})
        )
        meter = self._provider.get_meter("flow")
        for name, text in model.HELP.items():
            make = (meter.create_observable_counter if name in model.COUNTERS
                    else meter.create_observable_gauge)  # fmt: skip
            make("flow_" + name, callbacks=[self._observer(name)], description=text)
        log.info("telemetry pushed over OTLP to %s", endpoint)

    def _observer(self, name: str) -> Callable[[Any], Iterable[Any]]:
        from opentelemetry.metrics import Observation

        def observe(_options: Any) -> Iterable[Any]:
            return [Observation(s.value, dict(s.labels)) for s in self._samples() if s.name == name]

        return observe

    async def close(self) -> None:
        """The last export and the reader thread's end, bounded; never holds the loop up."""
        with trio.move_on_after(SHUTDOWN_S, shield=True):
            await trio.to_thread.run_sync(self._provider.shutdown, abandon_on_cancel=True)
        logging.getLogger(EXPORTER_LOGGER).removeFilter(self._quieter)
