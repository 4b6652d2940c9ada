"""`flow logs -f` on the coordinator follows a node on another machine live (docs/cluster.md,
"Logs"): its lines are forwarded over the cluster link as they are written, a lost machine
is one line, and the follow ends with the run's result, as it does locally."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import BOUND_S, wait_for
from netns import Machine, connected, run_info

# prints lines 1..30, waits until the test has seen line 30 through the follower (so the
# follower must have got it live, long after it started), then lines 31..60, and ends
TALKER = """
import os, pathlib, time
from node_sdk import Node
node = Node()
go = pathlib.Path(os.environ["GO"])
count = 0
for event in node:
    if event["type"] == "INPUT":
        if count == 30:
            if not go.exists():
                continue
        count += 1
        print(f"line {count} at {time.time():.3f}", flush=True)
        if count == 60:
            break
    elif event["type"] == "STOP":
        raise SystemExit("stopped before line 60")
print("talker done", flush=True)
"""


def write_dataflow(folder: Path) -> Path:
    (folder / "talker.py").write_text(TALKER)
    path = folder / "talk.yml"
    path.write_text(f"""
name: talk
env:
  GO: {folder / "go"}
nodes:
  - id: talker
    path: talker.py
    deploy: {{machine: b}}
    inputs: {{tick: dora/timer/millis/50}}
""")
    return path


class Lines:
    """A command's stdout lines as they come (a reader thread), for bounded waits."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self.lags: list[float] = []  # seconds from a talker's line to the follower's
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert child.stdout is not None
        stdout = child.stdout

        def read() -> None:
            for line in stdout:
                if stamp := re.search(r"\bline \d+ at ([\d.]+)$", line):
                    self.lags.append(time.time() - float(stamp.group(1)))
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def until(self, pattern: str) -> None:
        """Read lines until one matches `pattern` (fails after BOUND_S or at the end)."""
        deadline = time.monotonic() + BOUND_S
        while not any(re.search(pattern, line) for line in self.seen):
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} within {BOUND_S} s:\n"
                                     f"{''.join(self.seen)}") from None  # fmt: skip
            assert line is not None, f"ended before {pattern!r}:\n{''.join(self.seen)}"
            self.seen.append(line)

    def rest(self) -> None:
        while (line := self._queue.get(timeout=BOUND_S)) is not None:
            self.seen.append(line)


def test_logs_follow_a_remote_node_live_through_a_partition_to_the_result(
    patient_cluster: dict[str, Machine], tmp_path: Path
) -> None:
    # the patient grace: b must be back before its node is given up, however slowly a
    # loaded machine reconnects it
    a, b = patient_cluster["a"], patient_cluster["b"]
    tmp_path.chmod(0o755)
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(write_dataflow(tmp_path)))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    follower = subprocess.Popen(
        a.argv([sys.executable, "-m", "cli", "logs", "-f", run, "talker"]), env=a.env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = Lines(follower)
        lines.until(r"\bline 30 at")  # printed on b after the follow began: forwarded live
        b.link(False)
        lines.until(r"machine b lost: the log of talker is not forwarded")
        b.link(True)
        lines.until(r"machine b back")
        (tmp_path / "go").touch()
        lines.until(r"talker done")
        lines.rest()
        assert follower.wait(timeout=BOUND_S) == 0, "".join(lines.seen)
    finally:
        follower.kill()
        follower.wait()
        assert follower.stdout is not None
        follower.stdout.close()
    text = "".join(lines.seen)
    numbers = [int(n) for n in re.findall(r"\bline (\d+) at", text)]
    live = sorted(lines.lags[-30:])  # lines 31 to 60, written while followed
    print(f"\nforwarded lines shown {live[len(live) // 2]:.3f} s after they were printed "
          f"(median of 30; at most {live[-1]:.3f} s)")
    assert numbers == list(range(1, 61)), f"a line missing or twice:\n{text}"
    assert text.count("machine b lost") == 1, text
    assert text.index("line 30 ") < text.index("machine b lost") < text.index("line 31 ")
    # the follow ends as a local one does: with the run's result
    assert "talker done" in text
    assert run_info(a, run)["status"] == "succeeded", run_info(a, run)
    assert re.search(r"run talk \([\w-]+\) succeeded\n\s+talker\s+exited 0", text), text
