"""A `flow run` next to a daemon: listed by it (and by `flow list` with no daemon at all),
stopped through it, and every other command says in one line why it cannot reach such a
run (it was "not active (it is running)")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import BOUND_S, daemon_down, daemon_up, flow, flow_env, stream_graph, wait_for


def test_flow_stop_reaches_a_foreground_run_and_others_say_why_not(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "fg.yml"
    yml.write_text(stream_graph(tick_ms=20))
    echo = flow("topic", "echo", "fg", "counter/count", "--count", "1", home=flow_home)
    assert echo.returncode == 3, echo.stderr  # no daemon: the usual line, no ZMQError
    assert echo.stderr.startswith("error: cannot reach the flow daemon"), echo.stderr
    running = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml), "--name", "fg"],
        env=flow_env(flow_home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # no daemon yet: `flow list` reads the store, where the `flow run` records its run
        # (it is `starting` until its nodes are up: under load that may outlast the first look)
        def listed_running() -> bool:
            listed = flow("list", "--json", home=flow_home).stdout.splitlines()
            return [json.loads(line)["status"] for line in listed] == ["running"]

        wait_for(listed_running, "flow list never saw fg running")
        alone = flow("list", "--json", home=flow_home)
        assert alone.returncode == 0, alone.stderr
        (info,) = [json.loads(line) for line in alone.stdout.splitlines()]
        assert (info["name"], info["status"]) == ("fg", "running"), info
        assert info["origin"].startswith("foreground:"), info
        assert alone.stderr.startswith("the flow daemon is not running: runs as"), alone.stderr
        assert "wait for the next flow up" not in alone.stderr  # its `flow run` runs it
        assert flow("up", home=flow_home).returncode == 0
        wait_for(lambda: "fg" in flow("list", home=flow_home).stdout, "flow list never saw fg")
        for command in (("param", "list", "fg", "sink"), ("node", "info", "fg", "sink"),
                        ("topic", "hz", "fg", "counter/count", "--count", "2")):  # fmt: skip
            refused = flow(*command, home=flow_home)
            assert refused.returncode == 1, (command, refused.stdout)
            assert "is a foreground `flow run` (pid" in refused.stderr, refused.stderr
            assert len(refused.stderr.splitlines()) == 1
        top = flow("top", home=flow_home)  # piped: one table, or what an empty one says
        assert top.returncode == 0, top.stderr
        assert "no live runs of the daemon; 1 foreground flow run(s) (fg) show their nodes " \
            "in their own terminals" in top.stdout + top.stderr, top  # fmt: skip
        stopped = flow("stop", "fg", home=flow_home, timeout=BOUND_S)
        assert stopped.returncode == 0, stopped.stderr
        assert "run fg" in stopped.stdout
        assert "stopped" in stopped.stdout.splitlines()[0], stopped.stdout
        out, _ = running.communicate(timeout=BOUND_S)
        assert "run fg" in out
        # one whose process was killed: said so, and `flow stop` records its end
        killed = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", str(yml), "--name", "gone"],
            env=flow_env(flow_home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: "gone" in flow("list", home=flow_home).stdout, "flow list never saw it")
        killed.kill()
        killed.wait()
        refused = flow("param", "list", "gone", "sink", home=flow_home)
        # said to be a dead flow run, or already settled by the serving daemon (every 5 s)
        assert "whose process (pid" in refused.stderr or \
            "is not active: it has ended (failed)" in refused.stderr, refused.stderr  # fmt: skip
        settled = flow("stop", "gone", home=flow_home)
        if settled.returncode == 0:  # the stop recorded its end
            assert "run gone" in settled.stdout
            assert "failed" in settled.stdout.splitlines()[0], settled.stdout
        else:  # the serving daemon settled it first (it looks every 5 s): ended all the same
            assert "is not active: it has ended (failed)" in settled.stderr, settled.stderr
        assert "gone" not in flow("list", home=flow_home).stdout
        # `flow down` stops the daemon's runs: a `flow run` is said to be left running (it
        # printed `stopping fg2: waiting for ...`, and the run went on)
        running = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", str(yml), "--name", "fg2"],
            env=flow_env(flow_home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_for(lambda: "fg2" in flow("list", home=flow_home).stdout, "flow list never saw fg2")
        down = flow("down", home=flow_home, timeout=BOUND_S)
        assert down.returncode == 0, down.stderr
        assert "left running: 1 foreground flow run(s) (fg2" in down.stderr, down.stderr
        assert "stopping fg2" not in down.stderr
        assert running.poll() is None  # still running, its nodes too
        fg2 = json.loads(flow("list", "--json", home=flow_home).stdout.splitlines()[0])
        assert (fg2["name"], fg2["status"]) == ("fg2", "running"), fg2
    finally:
        running.kill()
        running.communicate()
        daemon_down(flow_home)


def test_a_run_stopped_as_it_starts_stops_every_node_without_sigkill(
    flow_home: Path, tmp_path: Path
) -> None:
    """`--stop-after 0`: the stop meets nodes being forked. One that had no process group
    of its own yet (between its fork and its setsid) lost its SIGTERM and was SIGKILLed
    after the whole grace (about 1 run in 20 here); each of these runs must end by STOP or
    SIGTERM. A grace longer than the command's bound: a lost signal fails the run's wait."""
    yml = tmp_path / "chain.yml"
    yml.write_text(stream_graph(tick_ms=10))
    for attempt in range(6):
        done = flow("run", str(yml), "--stop-after", "0", "--grace", "600s",
                    home=flow_home, timeout=BOUND_S)  # fmt: skip
        said = done.stdout + done.stderr
        assert done.returncode == 0, f"attempt {attempt}: {said}"
        assert "SIGKILL" not in said, f"attempt {attempt}: {said}"


def test_flow_stop_without_a_daemon_asks_the_flow_run_process(
    flow_home: Path, tmp_path: Path
) -> None:
    """`flow down` leaves a foreground run running and says `flow stop RUN` stops it; with
    the daemon gone that said `cannot reach the flow daemon`. It asks the `flow run` now."""
    yml = tmp_path / "fg.yml"
    yml.write_text(stream_graph(tick_ms=20))
    daemon_up(flow_home)
    running = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml), "--name", "fgs"],
        env=flow_env(flow_home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "running" in flow("list", home=flow_home).stdout, "fgs never ran")
        down = flow("down", home=flow_home)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "flow stop RUN" in down.stdout + down.stderr, down.stdout + down.stderr
        stopped = flow("stop", "fgs", home=flow_home)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "run fgs (" in stopped.stdout, stopped.stdout
        assert ") stopped" in stopped.stdout, stopped.stdout
        out, _ = running.communicate(timeout=BOUND_S)
        assert running.returncode == 143, out  # as a shell reports SIGTERM's end
        again = flow("stop", "fgs", home=flow_home)  # ended: nothing to ask, no daemon
        assert again.returncode == 3, again.stdout + again.stderr
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
        daemon_down(flow_home)
