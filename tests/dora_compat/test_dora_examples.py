"""dora-shaped dataflows run by `flow run`, their nodes importing `from dora import Node`.

Each dataflow here is written for this project in the shape of one dora-rs example (named
in its test); its nodes use dora's API unchanged and print what that example's README
calls success, which the test reads from `flow run`'s output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import flow, write_dataflow

pytest.importorskip("pyarrow")
pytest.importorskip("numpy")

RUN_BOUND_S = 120


def run_ok(home: Path, yml: Path) -> str:
    done = flow("run", str(yml), home=home, timeout=RUN_BOUND_S)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def test_echo_forwards_arrays_and_metadata(flow_home: Path, tmp_path: Path) -> None:
    """python-echo: a timer-driven array goes through an echo node to a checker."""
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: source
            path: source.py
            inputs: {tick: dora/timer/millis/50}
            outputs: [numbers]
          - id: echo
            path: echo.py
            inputs: {numbers: source/numbers}
            outputs: [numbers]
          - id: checker
            path: checker.py
            inputs: {numbers: echo/numbers}
        """,
        {
            "source.py": """
                import pyarrow as pa
                from dora import Node

                node = Node()
                sent = 0
                for event in node:
                    if event["type"] == "INPUT" and sent < 5:
                        node.send_output("numbers", pa.array([10, 20, 30]), event["metadata"])
                        sent += 1
                    if sent == 5:
                        break
            """,
            "echo.py": """
                from dora import Node

                node = Node()
                for event in node:
                    if event["type"] == "INPUT":
                        node.send_output("numbers", event["value"], event["metadata"])
                    elif event["type"] == "STOP":
                        break
            """,
            "checker.py": """
                import datetime
                from dora import Node

                node = Node()
                matched = 0
                for event in node:
                    if event["type"] == "INPUT":
                        assert event["kind"] == "dora"
                        stamp = event["metadata"]["timestamp"]
                        assert isinstance(stamp, datetime.datetime) and stamp.tzinfo
                        if event["value"].to_pylist() == [10, 20, 30]:
                            matched += 1
                    elif event["type"] == "STOP":
                        break
                print(f"checker matched {matched}", flush=True)
            """,
        },
    )
    out = run_ok(flow_home, yml)
    assert "checker matched 5" in out
