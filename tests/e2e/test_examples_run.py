"""Every example dataflow runs to its end under `flow run` and exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, flow

EXAMPLES = sorted(p.parent.name for p in (REPO / "dataflows").glob("*/dataflow.yml"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_to_success(flow_home: Path, example: str) -> None:
    done = flow("run", str(REPO / "dataflows" / example / "dataflow.yml"), home=flow_home)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "succeeded" in done.stdout
