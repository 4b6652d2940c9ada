"""The CLI's lifecycle commands as a user meets them (issue 12, "The CLI"): restart re-reads
the file, long waits name what they wait for, every command says how each node ended,
durations, names and RUN work the same everywhere."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
from helpers import BOUND_S, NODES, flow, flow_env, pty_ended, stream_graph, wait_for

STUBBORN = f"""
nodes:
  - id: stubborn
    path: {NODES}/stubborn.py
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
"""


def runs(home: Path, *extra: str) -> list[dict[str, Any]]:
    done = flow("list", "--json", *extra, home=home)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def start(home: Path, yml: Path, name: str) -> None:
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr


def node_ids(home: Path, *run: str) -> list[str]:
    done = flow("node", "list", *run, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["id"] for line in done.stdout.splitlines()]


def test_restart_rereads_the_file_refuses_an_invalid_one_and_says_what_it_does(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    start(daemon, yml, "rr")
    first = runs(daemon)[0]["id"]
    extra = f"""
  - id: second
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
"""
    yml.write_text(stream_graph(20) + extra)  # edited after the start
    done = flow("restart", home=daemon)  # RUN omitted: the only active run
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert f"restarting rr ({first[:13]}): stopping it, then starting {yml}" in said
    assert "started run rr (" in said
    assert "replacing" in said
    assert "  counter  stopped" in done.stdout  # how the old run's nodes ended
    assert sorted(node_ids(daemon)) == ["counter", "second", "sink"]  # the file as it is now
    current = runs(daemon)
    assert len(current) == 1
    assert current[0]["id"] != first

    yml.write_text("nodes:\n  - id: [\n")  # broken: the restart is refused, nothing stops
    refused = flow("restart", "rr", home=daemon)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the dataflow is invalid" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "restarting" not in refused.stdout
    assert [r["id"] for r in runs(daemon)] == [current[0]["id"]]
    assert runs(daemon)[0]["status"] == "running"

    stored = flow("restart", "rr", "--stored", home=daemon)  # the copy of the running run
    assert stored.returncode == 0, stored.stderr
    assert "the copy stored at its start" in stored.stdout
    assert sorted(node_ids(daemon)) == ["counter", "second", "sink"]
    yml.unlink()
    missing = flow("restart", home=daemon)
    assert missing.returncode == 2
    assert "no such dataflow file" in missing.stderr
    assert "--stored starts the copy" in missing.stderr
    assert flow("stop", home=daemon).returncode == 0


def test_stop_and_down_name_the_node_they_wait_for_and_how_each_ended(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "stubborn.yml"
    yml.write_text(STUBBORN)
    start(daemon, yml, "held")
    wait_running(daemon, "held")
    stopped = flow("stop", "--grace", "1s", home=daemon)  # piped: plain lines
    assert stopped.returncode == 0, stopped.stderr
    assert "stopping held (" in stopped.stderr
    assert "waiting for stubborn" in stopped.stderr
    assert "(SIGTERM in 1s)" in stopped.stderr
    assert "SIGKILL in" in stopped.stderr
    lines = stopped.stdout.splitlines()
    assert lines[0].startswith("run held (")
    assert lines[0].endswith(" stopped")
    assert "  stubborn  killed by SIGKILL (it had not ended after STOP and SIGTERM)" in lines
    assert "  counter   stopped" in lines

    start(daemon, yml, "tty")  # on a terminal: one live line, then the same account
    wait_running(daemon, "tty")
    env = flow_env(daemon)
    env["COLUMNS"] = "200"
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "stop", "--grace", "1s"], env=env, timeout=BOUND_S,
        encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect(r"stopping tty \([\w-]+\): waiting for stubborn")
        child.expect("killed by SIGKILL")
        child.expect(pexpect.EOF)
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert child.exitstatus == 0

    start(daemon, yml, "held2")
    wait_running(daemon, "held2")
    down = flow("down", "--grace", "1s", home=daemon)
    assert down.returncode == 0, down.stderr
    assert "waiting for stubborn" in down.stderr
    assert "  stubborn  killed by SIGKILL (it had not ended after STOP and SIGTERM)" in (
        down.stdout.splitlines()
    )
    assert "flow daemon stopped" in down.stdout + down.stderr


def wait_running(home: Path, name: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        if any(r["name"] == name and r["status"] == "running" for r in runs(home)):
            return
        time.sleep(0.1)
    raise AssertionError(f"run {name} never ran: {runs(home, '--all')}")


def test_flow_run_ctrl_c_says_what_it_waits_for_and_how_each_node_ended(
    tmp_path: Path, flow_home: Path
) -> None:
    yml = tmp_path / "stubborn.yml"
    yml.write_text(STUBBORN)
    env = flow_env(flow_home)
    env["COLUMNS"] = "200"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli", "run", str(yml), "--grace", "30s", "--name", "fg"],
        env=env,
        timeout=BOUND_S * 2,
        encoding="utf-8",
    )
    try:
        child.expect("stubborn: running")
        child.sendintr()
        child.expect("SIGINT: stopping the run")
        child.expect(r"stopping fg: waiting for stubborn \(SIGTERM in 30s\)")
        child.sendintr()
        _, text = pty_ended(child)
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert re.search(r"run fg \([\w-]+\) \S*stopped", text), text
    # the second Ctrl-C cut the grace short: the SIGKILL did not wait for it to run out
    assert re.search(r"stubborn\s+\S*killed by SIGKILL \(no grace left\)", text), text
    assert "had not ended after" not in text, text
    assert "counter" in text
    assert "stopped" in text
    assert "ignored SIGTERM" not in text
    assert "was killed by" not in text
    assert child.exitstatus == 130


def test_durations_names_and_an_optional_run_everywhere(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    ran = flow("run", str(yml), "--grace", "2s", "--stop-after", "1s", "--name", "fg", home=daemon)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert any(r["name"] == "fg" and r["status"] == "stopped" for r in runs(daemon, "--all"))
    bad = flow("run", str(yml), "--grace", "soon", home=daemon)
    assert bad.returncode == 2
    assert "soon" in bad.stderr

    start(daemon, yml, "one")
    start(daemon, yml, "two")
    again = flow("start", str(yml), "--detach", "--name", "one", home=daemon)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1
    assert "a run named one is already active" in again.stderr
    several = flow("node", "list", home=daemon)
    assert several.returncode == 2
    assert "several runs are active" in several.stderr
    assert flow("stop", "two", home=daemon).returncode == 0
    assert sorted(node_ids(daemon)) == ["counter", "sink"]  # RUN omitted: the only one
    restarted = flow("node", "restart", "counter", "--grace", "2s", home=daemon)
    assert restarted.returncode == 0, restarted.stderr
    assert "node counter: running (generation 2" in restarted.stdout
    topics = flow("topic", "list", home=daemon)
    assert topics.returncode == 0, topics.stderr
    assert "counter/count" in topics.stdout
    echoed = flow("topic", "echo", "counter/count", "--count", "2", home=daemon)
    assert echoed.returncode == 0, echoed.stderr
    assert len(echoed.stdout.splitlines()) >= 2
    logged = flow("logs", "counter", home=daemon)  # a lone word: the only run's node
    assert logged.returncode == 0, logged.stderr
    assert {line.split(" | ")[0].strip() for line in logged.stdout.splitlines()} == {"counter"}
    assert flow("stop", home=daemon).returncode == 0
    none = flow("node", "list", home=daemon)
    assert none.returncode == 1
    assert "no active run" in none.stderr


def test_node_remove_takes_the_node_out_of_node_list(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "stream.yml"
    yml.write_text(stream_graph(20))
    start(daemon, yml, "edit")
    removed = flow("node", "remove", "edit", "sink", home=daemon)
    assert removed.returncode == 0, removed.stderr
    assert node_ids(daemon, "edit") == ["counter"]
    gone = flow("node", "info", "sink", home=daemon)
    assert gone.returncode == 1
    assert "no node 'sink'" in gone.stderr
    assert flow("stop", "edit", home=daemon).returncode == 0


def test_list_shows_a_starting_run_with_the_nodes_it_waits_for(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "slow.yml"
    yml.write_text(
        f"""
nodes:
  - id: slow
    path: {NODES}/slowstart.py
    env: {{CONNECT_FILE: {tmp_path / "connect"}}}
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
"""
    )
    start(daemon, yml, "slowpoke")

    def node_statuses() -> dict[str, str]:
        listed = flow("node", "list", "--json", home=daemon)
        return {n["id"]: n["status"] for n in map(json.loads, listed.stdout.splitlines())}

    # slow connects only once the test touches `connect`: not a fixed 3 s that a loaded
    # machine's CLI starts (the looks below) could outlast
    wait_for(lambda: node_statuses() == {"slow": "starting", "counter": "running"},
             "the counter connected while slow has not")  # fmt: skip
    seen: list[tuple[str, dict[str, str]]] = []
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        info = runs(daemon)[0]
        seen.append((info["status"], {n["id"]: n["status"] for n in info["nodes"]}))
        (tmp_path / "connect").touch()  # seen starting once at least: slow may connect now
        if info["status"] == "running":
            break
    for status, nodes in seen:  # never `starting` with every node running
        assert status != "starting" or set(nodes.values()) != {"running"}, seen
    assert seen[-1][0] == "running"
    assert ("starting", {"slow": "starting", "counter": "running"}) in seen
    assert flow("stop", home=daemon).returncode == 0


def test_a_late_node_names_the_settings_that_give_it_longer(
    tmp_path: Path, flow_home: Path
) -> None:
    yml = tmp_path / "late.yml"
    yml.write_text(
        f"""
nodes:
  - id: slow
    path: {NODES}/slowstart.py
    env: {{SLOW_S: "60"}}
  - id: patient
    path: {NODES}/slowstart.py
    env: {{SLOW_S: "3"}}
    connect_timeout: 20s
"""
    )
    done = flow("run", str(yml), home=flow_home, env_extra={"FLOW_START_TIMEOUT": "2s"})
    assert done.returncode == 1, done.stdout + done.stderr
    # the patient node's own connect_timeout kept it out of the late ones
    assert "nodes did not connect within 2s: slow (a node connects when it creates its Node()" \
        in done.stderr  # fmt: skip
    assert "wants `connects: false` in its YAML; give a slow node longer with" in done.stderr
    assert "`connect_timeout: 60s`" in done.stderr
    assert "FLOW_START_TIMEOUT" in done.stderr
    assert "waiting for slow, patient to connect" in done.stderr  # said while it waited

    # both in time now (slow at once: a 1 s sleep left a loaded machine's spawn 1 s of the 2)
    yml.write_text(yml.read_text().replace('"60"', '"0"'))
    ran = flow(
        "run", str(yml), "--stop-after", "4s", home=flow_home,
        env_extra={"FLOW_START_TIMEOUT": "2s"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("slowstart: connected") == 2


def test_ctrl_c_while_a_node_has_not_connected_sends_it_sigterm_at_once(
    tmp_path: Path, flow_home: Path
) -> None:
    """A node that has not connected cannot be sent STOP: it was, and got SIGTERM only
    after the whole grace (600 s here; 10 s by default), said to have `ignored STOP`."""
    script = tmp_path / "quiet.sh"
    script.write_text("#!/bin/sh\necho started\nexec sleep 100\n")  # never connects
    script.chmod(0o755)
    yml = tmp_path / "quiet.yml"
    yml.write_text(f"nodes:\n  - id: quiet\n    path: {script}\n"
                   "    inputs: {t: flow/timer/millis/100}\n")  # fmt: skip
    running = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml), "--grace", "600s"],
        env=flow_env(flow_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert running.stdout is not None
        assert "started" in running.stdout.readline()  # it runs, and waits to be connected
        time.sleep(0.5)  # the start barrier is waiting for it
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=BOUND_S)
    finally:
        running.kill()
    assert re.search(r"quiet +stopped by SIGTERM \(STOP did not end it in its grace, or it "
                     r"never connected\)", out), out + err  # fmt: skip


def test_a_start_that_fails_gives_the_nodes_that_came_stop_before_any_tick(
    tmp_path: Path, flow_home: Path
) -> None:
    """A node driving hardware must not act in a start that failed: dora's API ticks a timer
    at once, and that tick came before the STOP (`INPUT t`, `INPUT t`, then STOP)."""
    (tmp_path / "never.py").write_text("import time\nprint('never connects', flush=True)\n"
                                       "time.sleep(100)\n")  # fmt: skip
    (tmp_path / "act.py").write_text(
        "from dora import Node\nnode = Node()\nfor event in node:\n"
        "    print('act event', event['type'], flush=True)\n"
    )
    yml = tmp_path / "failing.yml"
    yml.write_text(f"nodes:\n  - id: never\n    path: {tmp_path}/never.py\n"
                   "    inputs: {t: dora/timer/millis/10}\n    connect_timeout: 2s\n"
                   f"  - id: act\n    path: {tmp_path}/act.py\n"
                   "    inputs: {t: dora/timer/millis/10}\n")  # fmt: skip
    done = flow("run", str(yml), home=flow_home, timeout=BOUND_S * 2)
    assert done.returncode == 1, done.stdout + done.stderr
    events = re.findall(r"act event (\S+)", done.stdout)
    assert events == ["STOP"], done.stdout


DYNAMIC = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
  - id: viewer
    path: dynamic
    inputs:
      data: counter/count
"""


def test_a_dynamic_node_gets_stop_requested_on_flow_stop(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "dyn.yml"
    # the viewer reads a timer of its own: an input fed by the counter could close first
    # (the counter stopped, its end-of-stream in) and end the viewer with ALL_INPUTS_CLOSED
    yml.write_text(DYNAMIC.replace("data: counter/count", "tick: flow/timer/millis/50"))
    start(daemon, yml, "dyn")
    viewer = subprocess.Popen(
        [sys.executable, str(NODES / "dynstop.py")],
        env=flow_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert viewer.stdout is not None
        assert viewer.stdout.readline().strip() == "dynstop: attached"
        assert flow("stop", "dyn", home=daemon).returncode == 0
        out, err = viewer.communicate(timeout=BOUND_S)
    finally:
        viewer.kill()
    assert "dynstop: got STOP STOP_REQUESTED" in out, out + err
    assert viewer.returncode == 0, err


def test_ctrl_c_ends_a_dynamic_node_script_without_a_traceback(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "dyn.yml"
    yml.write_text(DYNAMIC)
    start(daemon, yml, "dyn2")
    child = pexpect.spawn(
        sys.executable, [str(NODES / "dynstop.py")], env=flow_env(daemon),
        timeout=BOUND_S, encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect("dynstop: attached")
        child.sendintr()
        _, text = pty_ended(child)
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert "node viewer: interrupted (Ctrl-C)" in text
    assert "Traceback" not in text, text
    assert "KeyboardInterrupt" not in text
    assert flow("stop", "dyn2", home=daemon).returncode == 0


def test_an_attached_start_names_the_nodes_it_waits_for_then_ctrl_c_stops_it(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "slow.yml"
    yml.write_text(
        f"""
nodes:
  - id: slow
    path: {NODES}/slowstart.py
    env: {{CONNECT_FILE: {tmp_path / "connect"}}}
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
"""
    )
    env = flow_env(daemon)
    env["COLUMNS"] = "200"
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "start", str(yml), "--attach", "--name", "att"],
        env=env, timeout=BOUND_S * 2, encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect(r"starting att \([\w-]+\): waiting for slow to connect \(\d+s so far")
        (tmp_path / "connect").touch()  # slow connects once the wait was said, not before
        child.expect("slowstart: connected")  # the log follows once the barrier is released
        child.sendintr()
        _, text = pty_ended(child)
    finally:
        if child.isalive():
            child.terminate(force=True)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # the terminal's colours
    assert re.search(r"run att \([\w-]+\) stopped", plain), plain
    assert "slow     stopped" in plain
    assert "counter  stopped" in plain
