"""Process nodes: any executable is a node (started, supervised, logged, stopped), and its
stdout lines are messages with `send_stdout_as`, without holding the start barrier."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from helpers import daemon_down, daemon_up, flow, write_dataflow
from procs import daemon_pid

BURST = 30  # printed at once, before the sink can have connected: held by the keeper
PACED = 10  # then one every 50 ms, while the sink runs

TICKER = f"""\
#!/bin/sh
echo "ticker starting" >&2
i=1
while [ $i -le {BURST} ]; do echo "tick $i"; i=$((i + 1)); done
while [ $i -le {BURST + PACED} ]; do sleep 0.05; echo "tick $i"; i=$((i + 1)); done
echo "ticker done" >&2
"""

SINK = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"got {event['value']} seq {event['seq']}", flush=True)
        elif event["type"] == "INPUT_CLOSED":
            print(f"closed {event['id']}", flush=True)
        elif event["type"] == "STOP":
            print(f"stop {event['id']}", flush=True)
"""

TICKER_TO_SINK = """
nodes:
  - id: ticker
    path: ticker.sh
    outputs: [lines]
    send_stdout_as: lines
  - id: sink
    path: sink.py
    inputs:
      line: {source: ticker/lines, queue_size: 100}
"""

EVERY_TICK = [f"tick {i} seq {i}" for i in range(1, BURST + PACED + 1)]


def received(text: str) -> list[str]:
    return re.findall(r"got (tick \d+ seq \d+)", text)


def assert_every_line_then_closed(text: str) -> None:
    """Every line, in order, numbered without a gap; the input closed after the last."""
    assert received(text) == EVERY_TICK, text
    assert text.index("closed line") > text.index(f"got {EVERY_TICK[-1]}"), text
    assert "stop ALL_INPUTS_CLOSED" in text, text


def run_info(home: Path, name: str) -> dict[str, Any]:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    matching = [r for r in runs if r["name"] == name]
    assert matching, done.stdout
    info: dict[str, Any] = matching[-1]
    return info


def nodes_of(home: Path, name: str) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in run_info(home, name)["nodes"]}


LOG_WAIT_S = 60.0  # a safety bound for a busy machine, far below the start timeout below


def wait_for_log(home: Path, run: str, node: str, text: str) -> str:
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        done = flow("logs", run, node, home=home)
        if text in done.stdout or time.monotonic() > deadline:
            assert text in done.stdout, f"{text!r} not in {node}'s log:\n{done.stdout}"
            return done.stdout
        time.sleep(0.2)


def test_shell_ticker_feeds_a_python_sink_under_flow_run(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, TICKER_TO_SINK, {"ticker.sh": TICKER, "sink.py": SINK})
    done = flow("run", str(yml), home=flow_home, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_every_line_then_closed(done.stdout)
    assert "succeeded" in done.stdout


def test_shell_ticker_feeds_a_python_sink_under_the_daemon(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, TICKER_TO_SINK, {"ticker.sh": TICKER, "sink.py": SINK})
    started = flow("start", str(yml), "--attach", "--name", "ticks", home=daemon, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    assert run_info(daemon, "ticks")["status"] == "succeeded"
    assert_every_line_then_closed(flow("logs", "ticks", "sink", home=daemon).stdout)
    # the process node is logged like any node: its stdout lines and its stderr
    ticker = flow("logs", "ticks", "ticker", home=daemon).stdout
    for line in ("ticker starting", "tick 1", f"tick {BURST + PACED}", "ticker done"):
        assert line in ticker, ticker
    assert nodes_of(daemon, "ticks")["ticker"]["status"] == "succeeded"


SOURCE = """
from node_sdk import Node

sent = 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            sent += 1
            node.send_output("count", str(sent))
        elif event["type"] == "STOP":
            break
"""

COUNTER_SINK = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"count {event['value']}", flush=True)
        elif event["type"] == "STOP":
            print(f"stop {event['id']}", flush=True)
"""

MIXED = """
nodes:
  - id: sleeper
    path: sleep
    args: "3600"  # still running at the test's stop, past any wait a loaded machine takes
  - id: source
    path: source.py
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
  - id: sink
    path: sink.py
    inputs:
      count: source/count
"""


def test_sleep_does_not_hold_the_start_and_stops_cleanly(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, MIXED, {"source.py": SOURCE, "sink.py": COUNTER_SINK})
    # a start barrier that waited for `sleep` would hold every node for ten minutes
    up = flow("up", home=flow_home, env_extra={"FLOW_START_TIMEOUT": "600s"})
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        started = flow("start", str(yml), "--detach", "--name", "mixed", home=flow_home)
        assert started.returncode == 0, started.stdout + started.stderr
        wait_for_log(flow_home, "mixed", "sink", "count 3")  # LOG_WAIT_S, far below 600 s
        assert run_info(flow_home, "mixed")["status"] == "running"
        sleeper = nodes_of(flow_home, "mixed")["sleeper"]
        assert sleeper["status"] == "running", sleeper
        assert alive(sleeper["pid"])
        stopped = flow("stop", "mixed", home=flow_home, timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        info = run_info(flow_home, "mixed")
        assert info["status"] == "stopped", info  # not failed: SIGTERM was its stop
        nodes = {n["id"]: n for n in info["nodes"]}
        assert nodes["sleeper"]["status"] == "stopped", nodes["sleeper"]
        assert nodes["sleeper"]["signal"] == "SIGTERM", nodes["sleeper"]
        assert nodes["sleeper"]["process"] is True, nodes["sleeper"]
        assert nodes["sink"]["process"] is False, nodes["sink"]
        # its stop was SIGTERM, as a process node's is: it had no STOP to ignore
        said = stopped.stdout + stopped.stderr
        assert re.search(r"sleeper\s+stopped by SIGTERM\n", said), said
        assert "STOP did not end it" not in said, said
        assert not alive(sleeper["pid"])
        # a STOP either way: the daemon's, or (a loaded machine: the source's end-of-stream
        # overtook it) the one for its inputs all closed; never none
        sink = flow("logs", "mixed", "sink", home=flow_home).stdout
        assert re.search(r"stop (STOP_REQUESTED|ALL_INPUTS_CLOSED)\n\Z", sink), sink[-300:]
    finally:
        daemon_down(flow_home)


def test_an_adopted_process_node_is_still_stopped_by_sigterm(
    flow_home: Path, tmp_path: Path
) -> None:
    """After a daemon crash its keeper keeps the node; the new daemon must not wait the whole
    grace for a STOP the node can never get."""
    # it must still be running at the stop, after a kill, a recovery and two CLI calls
    sleeper = "nodes:\n  - id: sleeper\n    path: sleep\n    args: '3600'\n"
    yml = write_dataflow(tmp_path, sleeper, {})
    daemon_up(flow_home)
    try:
        started = flow("start", str(yml), "--detach", "--name", "kept", home=flow_home)
        assert started.returncode == 0, started.stdout + started.stderr
        pid = nodes_of(flow_home, "kept")["sleeper"]["pid"]
        os.kill(daemon_pid(flow_home), signal.SIGKILL)
        daemon_up(flow_home)
        info = run_info(flow_home, "kept")
        assert info["recovered"] is True, info
        assert info["nodes"][0]["pid"] == pid, info  # adopted, not restarted
        began = time.monotonic()
        stopped = flow("stop", "kept", "--grace", "60", home=flow_home, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert time.monotonic() - began < 30, "the stop waited the grace for a STOP"
        info = run_info(flow_home, "kept")
        assert info["status"] == "stopped", info
        assert info["nodes"][0]["signal"] == "SIGTERM", info
        assert not info.get("degraded"), info
    finally:
        daemon_down(flow_home)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    return False


def test_flow_run_stops_a_process_node_cleanly(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, MIXED, {"source.py": SOURCE, "sink.py": COUNTER_SINK})
    began = time.monotonic()
    done = flow("run", str(yml), "--stop-after", "3s", home=flow_home, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped" in done.stdout, done.stdout
    assert "count 3" in done.stdout, done.stdout
    assert time.monotonic() - began < 30, "the start waited for the sleeper"


FLAKY = """\
#!/bin/sh
# fails twice, then succeeds: each generation prints its number
n=$(cat runs 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > runs
echo "generation $n"
[ $n -ge 3 ] || exit 1
"""

FLAKY_TO_SINK = """
nodes:
  - id: flaky
    path: flaky.sh
    outputs: [lines]
    send_stdout_as: lines
    restart_policy: on-failure
    restart_delay: 0.1
  - id: sink
    path: sink.py
    inputs:
      line: flaky/lines
"""

GEN_SINK = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"got {event['value']}", flush=True)
        elif event["type"] == "INPUT_CLOSED":
            print(f"closed {event['id']}", flush=True)
"""


def test_restart_policy_applies_and_the_output_closes_at_the_last_end(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, FLAKY_TO_SINK, {"flaky.sh": FLAKY, "sink.py": GEN_SINK})
    done = flow("run", str(yml), home=flow_home, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    got = re.findall(r"got (generation \d)", done.stdout)
    assert got == ["generation 1", "generation 2", "generation 3"], done.stdout
    # its consumer's input stayed open across the restarts, closed after the last line
    assert done.stdout.count("closed line") == 1, done.stdout
    assert done.stdout.index("closed line") > done.stdout.index("got generation 3")


def test_a_stop_tells_a_process_nodes_steps_as_they_are(daemon: Path, tmp_path: Path) -> None:
    """A process node gets SIGTERM at once, not STOP: a stop waiting for one that ignores
    it says SIGKILL comes next, and its ending names only the SIGTERM it ignored."""
    deaf = "nodes:\n  - id: deaf\n    path: sh\n    args: -c 'trap \"\" TERM; sleep 3600'\n"
    yml = write_dataflow(tmp_path, deaf, {})
    started = flow("start", str(yml), "--detach", "--name", "deaf", home=daemon)
    assert started.returncode == 0, started.stdout + started.stderr
    stopped = flow("stop", "deaf", "--grace", "1s", home=daemon)  # piped: plain lines
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "waiting for deaf (sent SIGTERM; SIGKILL in 1s)" in stopped.stderr, stopped.stderr
    assert "(SIGTERM in" not in stopped.stderr, stopped.stderr
    assert "  deaf  killed by SIGKILL (it had not ended after SIGTERM)" in stopped.stdout, (
        stopped.stdout
    )
