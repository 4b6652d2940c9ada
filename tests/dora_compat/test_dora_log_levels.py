"""A dora node's `log_*` records at every level unless `min_log_level` says otherwise, as
dora keeps them (log-aggregator's processor logs only with `log_debug`)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow, flow_run_ok, write_dataflow

LOGGER = """
import logging
from dora import Node

node = Node()
node.log_debug("debug from log_debug")
node.log_trace("trace from log_trace")
node.log_info("info from log_info")
logging.getLogger("plain").debug("debug from plain logging")
"""


def _records(home: Path, run: str) -> set[tuple[str, str, str]]:
    logs = flow("logs", run, "--json", home=home)
    assert logs.returncode == 0, logs.stderr
    return {
        (r["node"], r["level"], r["message"])
        for r in map(json.loads, logs.stdout.splitlines())
        if r["stream"] == "log"
    }


def test_log_methods_keep_every_level_without_min_log_level(
    flow_home: Path, tmp_path: Path
) -> None:
    """No `min_log_level`: `log_debug` and `log_trace` are written (and reach `dora/logs`);
    plain `logging` below the run's level (INFO) is not, as before. With `min_log_level:
    info` the node's `log_*` keep to it."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: all
            path: logger.py
          - id: quiet
            path: logger.py
            min_log_level: info
        """,
        {"logger.py": LOGGER},
    )
    flow_run_ok(flow_home, yml, "--name", "levels")
    records = _records(flow_home, "levels")
    assert ("all", "DEBUG", "debug from log_debug") in records, records
    assert ("all", "TRACE", "trace from log_trace") in records, records
    assert ("all", "INFO", "info from log_info") in records
    assert not any(r[2] == "debug from plain logging" for r in records)
    assert ("quiet", "INFO", "info from log_info") in records
    assert not any(r[0] == "quiet" and r[1] in ("DEBUG", "TRACE") for r in records), records
