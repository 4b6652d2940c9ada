"""`flow run` ends cleanly on a reader that left, SIGTERM and Ctrl-C (issue 11 item 12).

Each stop goes the one way a stop goes: STOP to every node, the grace, the result
recorded, the socket folder removed, nothing left running. Real pipes, real signals, and
a real pseudo-terminal for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from helpers import NODES, flow_env, stream_graph
from procs import wait_gone

from daemon.run.recovery import FOREGROUND_CHECK_S
from daemon.store import Store
from node_sdk import paths
from node_sdk.shm import SHM_DIR, run_prefix

EXIT_S = 15.0


def _flow_run(yml: Path, home: Path, **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml), *popen.pop("args", ())],
        env=flow_env(home, popen.pop("env_extra", None)),
        stdin=subprocess.DEVNULL,
        **popen,
    )


def _only_run(home: Path) -> dict[str, Any]:
    store = Store.open(paths.state_db(home))
    try:
        runs = store.runs(include_ended=True)
    finally:
        store.close()
    assert len(runs) == 1, runs
    return runs[0]


def _wait_for_seq(out: Path, least: int) -> None:
    """Until `flow run`'s output (a file) holds a message numbered `least` or more (a
    drop_oldest input may skip any one of them); bounded."""
    deadline = time.monotonic() + EXIT_S
    while not any(int(seq) >= least for seq in re.findall(rb"seq (\d+)\n", out.read_bytes())):
        assert time.monotonic() < deadline, out.read_text()[-3000:]
        time.sleep(0.05)


def _socket_folders(pid: int) -> list[Path]:
    """The socket folders of the `flow run` of that pid (its name ends in a random part)."""
    return list(Path("/tmp").glob(f"flow-{os.getuid()}-fg{pid}-*"))


def _sink_lines(home: Path, run_id: str) -> str:
    return (home / "runs" / run_id / "logs" / "sink.log").read_text()


def _assert_stopped_cleanly(home: Path, pid: int) -> dict[str, Any]:
    """The run is recorded stopped, every node got STOP and stopped, nothing is left."""
    run = _only_run(home)
    assert run["status"] == "stopped", run
    assert {n["id"]: n["status"] for n in run["nodes"]} == {
        "counter": "stopped",
        "sink": "stopped",
    }
    assert all(n["exit_code"] == 0 for n in run["nodes"]), run["nodes"]  # STOP, not a signal
    assert not wait_gone([n["pid"] for n in run["nodes"] if n.get("pid")], 2.0)
    assert not _socket_folders(pid)
    sink = _sink_lines(home, run["id"])
    # its own STOP, or the counter's end-of-stream first (every node gets STOP at once)
    assert re.search(r"stop (STOP_REQUESTED|ALL_INPUTS_CLOSED)", sink), sink[-500:]
    assert "gaps=0 repeats=0" in sink  # what it got before the stop came in order
    counter = (home / "runs" / run["id"] / "logs" / "counter.log").read_text()
    assert "counter sent" in counter  # it left its loop on STOP and ended by itself
    return run


@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_row12_flow_run_into_head_ends_141_and_stops_the_run(
    tmp_path: Path, flow_home: Path, stderr_too: bool
) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    errors_to = subprocess.STDOUT if stderr_too else subprocess.PIPE  # `2>&1 | head -2`
    flow_run = _flow_run(yml, flow_home, stdout=subprocess.PIPE, stderr=errors_to)
    assert flow_run.stdout is not None
    head = subprocess.Popen(["head", "-2"], stdin=flow_run.stdout, stdout=subprocess.PIPE)
    flow_run.stdout.close()  # head holds the only read end: when it exits, the pipe breaks
    try:
        shown, _ = head.communicate(timeout=EXIT_S)
        status = flow_run.wait(timeout=EXIT_S)
    finally:
        flow_run.kill()
        head.kill()
    assert len(shown.splitlines()) == 2
    errors = ""
    if flow_run.stderr is not None:
        errors = flow_run.stderr.read().decode()
        flow_run.stderr.close()
    assert status == 141, errors  # as a shell reports a writer that SIGPIPE ended
    assert "keeper" not in errors, errors  # the keeper thread never died of the pipe
    _assert_stopped_cleanly(flow_home, flow_run.pid)


def test_row12_flow_run_sigterm_stops_the_run_and_exits_143(
    tmp_path: Path, flow_home: Path
) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    out = (tmp_path / "out.txt").open("wb")
    flow_run = _flow_run(yml, flow_home, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_seq(tmp_path / "out.txt", 5)
        flow_run.send_signal(signal.SIGTERM)
        status = flow_run.wait(timeout=EXIT_S)
    finally:
        flow_run.kill()
        out.close()
    text = (tmp_path / "out.txt").read_text()
    assert status == 143, text
    assert "SIGTERM: stopping the run" in text
    _assert_stopped_cleanly(flow_home, flow_run.pid)


def test_row12_flow_run_ctrl_c_stops_gracefully_and_twice_kills(
    tmp_path: Path, flow_home: Path
) -> None:
    yml = tmp_path / "stubborn.yml"
    yml.write_text(
        f"""
nodes:
  - id: stubborn
    path: {NODES}/stubborn.py
    inputs:
      tick: flow/timer/millis/50
"""
    )
    env = flow_env(flow_home)
    env["COLUMNS"] = "200"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli", "run", str(yml), "--grace", "30"],
        env=env,
        timeout=EXIT_S,
        encoding="utf-8",
    )
    try:
        child.expect("stubborn: running")
        started = time.monotonic()
        child.sendintr()  # the terminal's Ctrl-C: SIGINT to the foreground process group
        child.expect("SIGINT: stopping the run")
        child.expect("ignoring STOP")  # the node got STOP: a graceful stop, not a kill
        child.sendintr()
        child.expect("killing the run's nodes")
        child.expect(pexpect.EOF)
        child.close()
        assert time.monotonic() - started < 20  # well within the 30 s grace: killed
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert child.exitstatus == 130, child.before
    run = _only_run(flow_home)
    assert run["status"] == "stopped"
    assert run["nodes"][0]["status"] == "killed"
    assert not wait_gone([run["nodes"][0]["pid"]], 2.0)


def test_row12_a_sigkilled_flow_run_is_settled_by_the_next(tmp_path: Path, flow_home: Path) -> None:
    """SIGKILL cannot be handled: the next `flow run` removes its socket folder and records
    its run failed, so `flow list` shows no phantom `running` run."""
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    out = (tmp_path / "out.txt").open("wb")
    env = {"FLOW_DAEMON_GRACE": "2"}  # its orphaned nodes stop by themselves soon
    killed = _flow_run(yml, flow_home, stdout=out, stderr=subprocess.STDOUT, env_extra=env)
    try:
        _wait_for_seq(tmp_path / "out.txt", 3)
        # its folder, which nothing can remove once it is killed but the next `flow run`
        # (any of this user's: another test's may sweep it first, so it is checked here)
        (folder,) = _socket_folders(killed.pid)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=EXIT_S)
    finally:
        killed.kill()
        out.close()
    assert _only_run(flow_home)["status"] == "running"  # the phantom
    finite = tmp_path / "finite.yml"
    finite.write_text(
        stream_graph(20).replace("outputs: [count]", "outputs: [count]\n    env: {COUNT: 3}")
    )
    again = _flow_run(finite, flow_home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert again.wait(timeout=EXIT_S) == 0
    assert not folder.exists()
    store = Store.open(paths.state_db(flow_home))
    try:
        runs = store.runs(include_ended=True)
    finally:
        store.close()
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert runs[0]["error"] == "the flow run process exited"
    for node in runs[0]["nodes"]:  # none left "running" with a dead pid
        assert node["status"] == "failed", node
        assert node["stderr_tail"][-1] == "ended with its flow run process"
    assert not wait_gone([n["pid"] for n in runs[0]["nodes"] if n.get("pid")], 10.0)


def test_flow_run_whose_terminal_closes_stops_the_run_and_exits_129(
    tmp_path: Path, flow_home: Path
) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "run", str(yml)], env=flow_env(flow_home), timeout=EXIT_S
    )
    try:
        child.expect(b"seq 5\r\n")
        # the window or the ssh session goes: the kernel hangs the terminal up, SIGHUP
        child.ptyproc.fileobj.close()  # the pty's master end
        child.ptyproc.closed = True  # pexpect must not close it again (or signal the child)
        deadline = time.monotonic() + EXIT_S
        # as a shell sends its jobs, and again until it ends: a late one (as the run's own
        # signal handling ends) must not cut its exit short (it died of one, in CI)
        while not (ended := os.waitpid(child.pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, "flow run did not end on its terminal's hangup"
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGHUP)
            time.sleep(0.01)
        status = ended[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
    assert os.waitstatus_to_exitcode(status) == 129
    _assert_stopped_cleanly(flow_home, child.pid)


def test_flow_run_under_nohup_lives_on_past_a_hangup(tmp_path: Path, flow_home: Path) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    out = (tmp_path / "out.txt").open("wb")
    flow_run = _flow_run(
        yml, flow_home, stdout=out, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # as nohup does
    )  # fmt: skip
    try:
        _wait_for_seq(tmp_path / "out.txt", 5)
        flow_run.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert flow_run.poll() is None, (tmp_path / "out.txt").read_text()
        assert _only_run(flow_home)["status"] == "running"
        flow_run.send_signal(signal.SIGTERM)
        status = flow_run.wait(timeout=EXIT_S)
    finally:
        flow_run.kill()
        out.close()
    assert status == 143, (tmp_path / "out.txt").read_text()
    _assert_stopped_cleanly(flow_home, flow_run.pid)


def test_a_sigkilled_flow_run_is_settled_by_a_serving_daemon(
    tmp_path: Path, flow_home: Path, daemon: Path
) -> None:
    """No next `flow run` needed: the daemon settles it, and removes the shared-memory
    segments its nodes were sending through."""
    yml = tmp_path / "camera.yml"
    yml.write_text(
        f"nodes:\n  - id: camera\n    path: {NODES}/camera.py\n"
        "    inputs: {tick: flow/timer/millis/20}\n    outputs: [image]\n"
        f"  - id: sink\n    path: {NODES}/seqsink.py\n    inputs: {{image: camera/image}}\n"
    )
    out = (tmp_path / "out.txt").open("wb")
    killed = _flow_run(yml, flow_home, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_seq(tmp_path / "out.txt", 3)
        (folder,) = _socket_folders(killed.pid)
        run_id = _only_run(flow_home)["id"]
        prefix = run_prefix(run_id)
        assert any(name.startswith(prefix) for name in os.listdir(SHM_DIR))
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=EXIT_S)
    finally:
        killed.kill()
        out.close()
    deadline = time.monotonic() + FOREGROUND_CHECK_S + EXIT_S
    while _only_run(flow_home)["status"] == "running":
        assert time.monotonic() < deadline, "the daemon never settled the dead flow run"
        time.sleep(0.2)
    run = _only_run(flow_home)
    assert run["status"] == "failed", run
    assert run["error"] == "the flow run process exited"
    # its segments and folder go right after its record is written: waited for, bounded
    deadline = time.monotonic() + EXIT_S
    while folder.exists() or [name for name in os.listdir(SHM_DIR) if name.startswith(prefix)]:
        assert time.monotonic() < deadline, "its segments or socket folder were left"
        time.sleep(0.1)
    assert not wait_gone([n["pid"] for n in run["nodes"] if n.get("pid")], 10.0)
