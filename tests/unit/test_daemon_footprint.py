"""What `python -m daemon serve` imports: nothing that only a cluster or telemetry needs.

The idle daemon's RSS has a cap (SPEC 11, bench's RSS row); asyncio (what pyzmq's
`ThreadAuthenticator` and `zmq.utils.monitor` pull in) is about a megabyte of it.
"""

from __future__ import annotations

import subprocess
import sys


def test_serving_imports_leave_asyncio_and_the_exporters_out() -> None:
    heavy = ("asyncio", "zmq.asyncio", "zmq.auth.thread", "prometheus_client", "mcap",
             "opentelemetry", "numpy", "pyarrow")  # fmt: skip
    serve = "daemon.main, daemon.cluster.start, daemon.model.metrics"  # as __main__'s `serve`
    code = f"import sys, {serve}; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
