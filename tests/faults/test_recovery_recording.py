"""A run recorded from its start goes on being recorded after the daemon recovers it.

The daemon is killed with SIGKILL while `flow start --record` records a counter; the
recorder, whose lifeline was the dead daemon, finishes its file with what came before. The
new daemon adopts the run and records it on, into `NAME.recovered-1.mcap`: both files are
whole MCAP files, and the second carries on from the adopted counter's next values.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers import daemon_down, flow, stream_graph, wait_for
from mcap.reader import make_reader
from procs import daemon_pid, wait_gone

from daemon.recorder.__main__ import DRAIN_MAX_S

ADOPT = {"FLOW_DAEMON_GRACE": "60s"}  # the keeper waits for the new daemon: adopted


def counts(path: Path) -> list[int]:
    """The counter's values in a finished MCAP file, in the order they were written."""
    with path.open("rb") as stream:
        reader = make_reader(stream)
        assert reader.get_summary() is not None, f"{path} was not finished"
        return [
            int(json.loads(message.data)["value"])
            for _, channel, message in reader.iter_messages(log_time_order=False)
            if channel.topic == "counter/count"
        ]


def test_a_recovered_run_is_recorded_again_in_a_file_of_its_own(
    flow_home: Path, tmp_path: Path
) -> None:
    try:
        record_through_a_crash(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def record_through_a_crash(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home, env_extra=ADOPT).returncode == 0
    yml = tmp_path / "rec.yml"
    yml.write_text(stream_graph(tick_ms=20))
    first = tmp_path / "run.mcap"
    started = flow("start", str(yml), "--detach", "--name", "rec", "--record", str(first),
                   home=flow_home)  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_for(lambda: "sink" in flow("logs", "rec", "sink", home=flow_home).stdout, "no data")
    killed = daemon_pid(flow_home)
    os.kill(killed, signal.SIGKILL)
    crashed = time.monotonic()
    assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
    assert flow("up", home=flow_home, env_extra=ADOPT).returncode == 0
    again = tmp_path / "run.recovered-1.mcap"
    wait_for(again.exists, "the recovered run was not recorded again")
    listed = json.loads(flow("list", "--json", home=flow_home).stdout.splitlines()[0])
    assert listed["recovered"] is True
    assert listed["record"] == str(first)  # the path it was started with
    wait_for(lambda: again.stat().st_size > 0, "nothing recorded after the recovery")
    # the second file takes more than the first recorder's last drain, which reads on for
    # up to DRAIN_MAX_S after the crash while the adopted counter still sends to it
    time.sleep(max(2.0, crashed + DRAIN_MAX_S + 1.0 - time.monotonic()))
    stopped = flow("stop", "rec", home=flow_home)
    assert stopped.returncode == 0, stopped.stderr
    before, after = counts(first), counts(again)
    assert before, "the first file holds nothing"
    assert after, f"the second file holds nothing:\n{stopped.stdout}"
    assert before == list(range(before[0], before[0] + len(before)))
    assert after == list(range(after[0], after[0] + len(after)))
    # the adopted counter went on: the second file follows (the first recorder drains what
    # was in flight for up to DRAIN_MAX_S after the crash, so the two may overlap that long)
    assert before[0] < after[0]
    assert after[-1] > before[-1]
    for log in flow_home.glob("runs/*/recorder-*.log"):  # the first had no daemon to tell
        assert "Traceback" not in log.read_text(), log.read_text()
