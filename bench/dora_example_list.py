"""dora-rs's Python-only example and test dataflows, each with its own success criterion.

A dataflow is Python-only when every node is a Python script (`path: *.py`) or a
`path: dynamic` node, possibly inside a `module:` whose nodes are scripts too: no
operator, no ROS 2 node, no hub or git source, no Rust/C/C++ build. `select()` finds them
in a checkout; `EXAMPLES` says how each one is judged, by the example's README (or the
node's own asserts), and why some cannot pass on a machine without a camera, a GPU or ROS 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

NODE_FAILS = (r"Traceback \(most recent call last\)", r"\[FAIL\]", r"AssertionError")


@dataclass(frozen=True)
class Example:
    """One dataflow file of the checkout and how its run is judged."""

    yaml: str  # relative to the checkout
    criterion: str  # the README's (or the node's) success criterion, in words
    expect: tuple[str, ...] = ()  # regexes that must all occur in the run's output
    forbid: tuple[str, ...] = NODE_FAILS  # regexes that must not occur
    stop_after: str | None = "10s"  # None: the dataflow ends by itself
    cannot: str = ""  # why it cannot pass on this machine (camera, GPU, ROS 2)
    needs: tuple[str, ...] = ()  # Python modules its nodes import beyond numpy/pyarrow
    live_edit: tuple[tuple[str, ...], ...] = field(default=())  # `flow` commands, in order
    check_only: bool = False  # judged by `flow check` refusing it (a fixture of dora's)


ROS2 = "needs ROS 2 (its nodes use dora's Ros2Context; flow has no ROS 2 bridge)"

EXAMPLES: tuple[Example, ...] = (
    Example(
        "examples/python-echo/dataflow.yml",
        "every message `[PASS]`, a final `Total PASS: N`",
        expect=(r"\[PASS\] #5 data matches", r"Total PASS: \d+"),
    ),
    Example(
        "examples/python-dataflow/dataflow.yml",
        "the receiver prints the sender's messages and the transformer's structs",
        expect=(r"receiver .*Received message", r"receiver .*Received transformed: \[\{'doubled'"),
    ),
    Example(
        "examples/python-drain/dataflow.yaml",
        "`drain()` returns the queued events, `try_recv()` polls, the receiver ends `done!`",
        expect=(r"Event\(type=<EventType.INPUT", r"done!"),
        stop_after=None,
    ),
    Example(
        "examples/python-log/dataflow.yaml",
        "the receiver's log records at their levels, then `done!`",
        expect=(r"INFO root: info \[", r"WARNING __main__: THIS IS A WARNING", r"done!"),
        stop_after=None,
    ),
    Example(
        "examples/python-async/dataflow.yaml",
        "the asyncio receiver gets events through `run_in_executor(node.next)` and ends `done!`",
        expect=(r"receive_data_with_sleep .*done!",),
    ),
    Example(
        "examples/python-concurrent-rw/dataflow.yml",
        "both nodes read each other's timestamps in one thread while another thread sends",
        expect=(r"node1 .*info \[\d+\]", r"node2 .*info \[\d+\]", r"read_data_task done!"),
    ),
    Example(
        "examples/python-multiple-arrays/dataflow.yml",
        "`Sent message with 3 arrays` and `Received and decoded. Shape1: (480, 640, 3)`",
        expect=(r"Sent message with 3 arrays", r"Shape1: \(480, 640, 3\).*State: \(1, 6\)"),
    ),
    Example(
        "examples/python-recv-async/dataflow.yml",
        "`recv-async: SUCCESS - received and echoed 10 messages`",
        expect=(r"recv-async: SUCCESS - received and echoed 10 messages",),
        stop_after=None,
    ),
    Example(
        "examples/python-zero-copy-send/dataflow.yml",
        "10 `large_output` and 10 `rgb_image` received",
        expect=(r"received 10 large_output \+ 10 rgb_image",),
        stop_after=None,
    ),
    Example(
        "examples/python-zero-copy-send/contract_dataflow.yml",
        "`11/11 contract cases passed`",
        expect=(r"11/11 contract cases passed",),
        forbid=(r"FAIL ",),
        stop_after=None,
    ),
    Example(
        "examples/python-logging/dataflow.yml",
        "the monitor reads the sensor's and processor's log entries (`send_logs_as`) and "
        "counts the processor's simulated error",
        expect=(
            r"monitor caught error: simulated processing error",
            r"monitor summary: readings=\d+",
        ),
        forbid=(r"Traceback \(most recent call last\)",),  # the processor raises by design
    ),
    Example(
        "examples/log-aggregator/dataflow.yml",
        "the log viewer gets every node's log entries through `dora/logs`",
        expect=(
            r"Log Viewer Started",
            r'log-viewer .*"node_id": ?"sensor"',
            r'log-viewer .*"node_id": ?"processor"',
        ),
    ),
    Example(
        "examples/module-dataflow/dataflow.yml",
        "`pipeline.doubler` doubles, `pipeline.filter` passes even values, the receiver gets them",
        expect=(
            r"pipeline.doubler .*Doubled \[(\d+)\] -> \[\d+\]",
            r"pipeline.filter .*Passed through even values: \[\d*[02468]\]",
            r"receiver .*Received \[filtered\]: \[\d*[02468]\]",
        ),
        stop_after=None,
    ),
    Example(
        "examples/typed-dataflow/dataflow.yml",
        "`flow check` accepts the types (`dora validate`: `All type annotations OK`); the sink "
        "labels the readings",
        expect=(r"\[sink\] (OK|LOW|HIGH): ",),
        stop_after=None,
    ),
    Example(
        "examples/streaming-example/dataflow.yml",
        "each prompt streamed as tokens and completed by the sink",
        expect=(r"Sent prompt: ", r"Streamed \d+ tokens", r"sink .*Complete \(\d+ tokens\)"),
    ),
    Example(
        "examples/ros2-comparison/dataflow.yml",
        "the dora-side benchmark prints its latency table for each payload size",
        expect=(r"Dora Latency:", r"8B  avg=", r"4KB  avg="),
        stop_after="40s",
    ),
    Example(
        "examples/dynamic-add-remove/dataflow.yml",
        "after `node add` and two `node connect`, the receiver gets `filtered` (even) values; "
        "`node remove` takes the filter out",
        expect=(r"receiver .*\[value\] Received", r"receiver .*\[filtered\]"),
        stop_after=None,
        live_edit=(
            ("node", "add", "--from-yaml", "filter-node.yml", "--dataflow", "{run}"),
            ("node", "connect", "--dataflow", "{run}", "sender/value", "filter/input"),
            ("node", "connect", "--dataflow", "{run}", "filter/output", "receiver/filtered"),
            ("sleep", "3"),
            ("node", "remove", "--dataflow", "{run}", "filter"),
        ),
    ),
    Example(
        "examples/dynamic-agent-tools/dataflow.yml",
        "after adding the calculator tool and wiring it (a second source on "
        "`agent/tool-response`), the agent gets calc answers as well as echo ones",
        expect=(r'"tool": "echo"', r'"tool": "calc"'),
        stop_after=None,
        live_edit=(
            ("node", "add", "--from-yaml", "calc-tool-node.yml", "--dataflow", "{run}"),
            ("node", "connect", "--dataflow", "{run}", "agent/tool-request", "calc-tool/request"),
            ("node", "connect", "--dataflow", "{run}", "calc-tool/response", "agent/tool-response"),
            ("sleep", "6"),
            ("node", "remove", "--dataflow", "{run}", "calc-tool"),
        ),
    ),
    Example(
        "tests/queue_size_and_timeout_python/dataflow.yaml",
        "the receiver's own assert: each message's latency under its bound; the run succeeds",
        expect=(r"Difference: ",),
        stop_after=None,
    ),
    Example(
        "tests/queue_size_latest_data_python/dataflow.yaml",
        "the receiver's own assert: `queue_size: 1` gives the latest data (latency under 10 s)",
        expect=(r"Duration:  ",),
        stop_after=None,
    ),
    Example(
        "tests/fixtures/zenoh-debug-dataflow.yml",
        "runs until stopped; `topic echo` shows the ticker's counter (dora needs its debug "
        "inspection switch for that, flow does not)",
        expect=(r"seq 5: <uint64 x1> \[\d+\]",),
        stop_after=None,
        live_edit=(("topic", "echo", "{run}", "ticker/count", "--count", "5"),),
    ),
    Example(
        "tests/fixtures/type-mismatch.yml",
        "a fixture meant to be refused: `flow check` names the Float64/String mismatch (its "
        "sensor.py is not in dora's tree either)",
        expect=(r"type mismatch: sensor/reading sends std/core/v1/Float64",),
        check_only=True,
    ),
    Example(
        "examples/python-parquet-recorder/dataflow.yml",
        "frames from the camera written to `logs/frames_NNNN.parquet`",
        cannot="needs a USB camera (cv2.VideoCapture(0))",
        needs=("cv2", "pandas"),
    ),
    Example(
        "examples/python-yolo-detection/dataflow.yml",
        "boxes drawn on webcam frames",
        cannot="needs a webcam and downloads YOLO weights (ultralytics)",
        needs=("cv2", "ultralytics"),
    ),
    Example(
        "examples/python-yolo-detection/dataflow_multi.yml",
        "two webcam pipelines",
        cannot="needs two webcams and downloads YOLO weights (ultralytics)",
        needs=("cv2", "ultralytics"),
    ),
    Example(
        "examples/cuda-benchmark/cuda_bench.yml",
        "latency table of CUDA IPC transfers",
        cannot="needs a CUDA GPU, torch and dora_tensor_pool",
        needs=("torch",),
    ),
    Example(
        "examples/cuda-benchmark/cpu_bench.yml",
        "latency table of CPU transfers",
        cannot="needs a CUDA GPU too (its sender makes a cuda tensor at import), torch and "
        "dora_tensor_pool",
        needs=("torch",),
    ),
    Example(
        "examples/cuda-benchmark/demo_bench.yml",
        "demo latency with a dynamic receiver",
        cannot="needs torch and dora_tensor_pool (dora's tensor pool, not in flow)",
        needs=("torch",),
    ),
    Example("examples/ros2-bridge/python/action-client/dataflow.yml", "ROS 2 action", cannot=ROS2),
    Example("examples/ros2-bridge/python/action-server/dataflow.yml", "ROS 2 action", cannot=ROS2),
    Example("examples/ros2-bridge/python/parameter/dataflow.yml", "ROS 2 parameter", cannot=ROS2),
    Example("examples/ros2-bridge/python/service-client/dataflow.yml", "ROS 2", cannot=ROS2),
    Example("examples/ros2-bridge/python/service-server/dataflow.yml", "ROS 2", cannot=ROS2),
    Example("examples/ros2-bridge/python/turtle/dataflow.yml", "turtlesim moves", cannot=ROS2),
)


NOT_SCRIPTS = frozenset({"operator", "operators", "ros2", "git", "hub"})


def _python_nodes(nodes: object, folder: Path) -> bool:
    """Whether every node of a `nodes` list is a Python script or a dynamic node."""
    if not isinstance(nodes, list) or not nodes:
        return False
    for node in nodes:
        if not isinstance(node, dict) or NOT_SCRIPTS & set(node):
            return False
        if "module" in node:
            module = yaml.safe_load((folder / str(node["module"])).read_text())
            if not _python_nodes(module.get("nodes"), (folder / str(node["module"])).parent):
                return False
            continue
        path = str(node.get("path", ""))
        if not (path.endswith(".py") or path == "dynamic"):
            return False
    return True


def select(checkout: Path) -> list[str]:
    """The Python-only dataflows of the checkout's examples/ and tests/ (module files left out)."""
    found = []
    for path in sorted([*checkout.glob("examples/**/*.y*ml"), *checkout.glob("tests/**/*.y*ml")]):
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, OSError):
            continue
        python = isinstance(data, dict) and _python_nodes(data.get("nodes"), path.parent)
        if python and "module" not in data:
            found.append(str(path.relative_to(checkout)))
    return found
