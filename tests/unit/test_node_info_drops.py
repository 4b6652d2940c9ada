"""`flow node info`'s table: an output's DROPPED counts per edge, and says so when it has any."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cli.commands.node import print_detail

NOTE = "an output's MESSAGES counts each message once, its DROPPED each edge"


def _node(dropped: int) -> dict[str, Any]:
    stats = {"inputs": {}, "outputs": {"image": {"sent": 30, "dropped": dropped, "bytes": 300}},
             "rates": {"out:image": 30.0}}  # fmt: skip
    return {"id": "camera", "run": "r1", "status": "running", "generation": 1, "pid": 7,
            "restarts": 0, "inputs": {}, "outputs": ["image"], "stats": stats}  # fmt: skip


@pytest.mark.parametrize("dropped", [0, 4])
def test_an_outputs_drops_are_said_to_be_per_edge(
    dropped: int, capsys: pytest.CaptureFixture[str]
) -> None:
    print_detail(_node(dropped))
    out = capsys.readouterr().out
    assert re.search(r"out image +30 +300 +" + str(dropped), out), out
    assert (NOTE in out.replace("\n", " ")) is bool(dropped), out
