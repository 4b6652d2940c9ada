"""Nodes placed on machines (docs/cluster.md, "Placement"): started, fed, stopped from the
coordinator across real network namespaces, real daemons and the real CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers import wait_for
from netns import GRACE_S, LOST_AFTER_S, PORT, Machine, connected, run_info

SOURCE = """
from node_sdk import Node
node = Node()
print("source up")
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("counter", str(sent))
    elif event["type"] == "STOP":
        break
"""

SINK = """
import os
from node_sdk import Node
node = Node()
with open(os.environ["OUT"], "a") as out:
    for event in node:
        if event["type"] == "INPUT":
            out.write(f"{event['value']}\\n")
            out.flush()
        elif event["type"] in ("INPUT_CLOSED", "STOP"):
            out.write(f"{event['type']}\\n")
            out.flush()
            if event["type"] == "STOP":
                break
"""


def write_dataflow(folder: Path, source_on: str, sink_on: str) -> Path:
    (folder / "source.py").write_text(SOURCE)
    (folder / "sink.py").write_text(SINK)
    path = folder / "across.yml"
    path.write_text(f"""
name: across
env:
  OUT: {folder / "received.txt"}
nodes:
  - id: source
    path: source.py
    deploy: {{machine: {source_on}}}
    inputs: {{tick: dora/timer/millis/20}}
    outputs: [counter]
  - id: sink
    path: sink.py
    _unstable_deploy: {{machine: {sink_on}}}
    inputs: {{counter: {{source: source/counter, queue_size: 1000}}}}  # no drop under load
""")
    return path


def ready(cluster: dict[str, Machine], folder: Path) -> tuple[Machine, Machine]:
    """The coordinator `a` and member `b`, once b is connected; `folder` readable by both."""
    folder.chmod(0o755)
    wait_for(lambda: connected(cluster["a"], "b"), "b connected")
    return cluster["a"], cluster["b"]


def received(folder: Path) -> list[str]:
    path = folder / "received.txt"
    return path.read_text().split() if path.exists() else []


def test_a_dataflow_across_two_machines_starts_runs_and_stops(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    before = {"a": set(a.pids()), "b": set(b.pids())}
    dataflow = write_dataflow(tmp_path, source_on="b", sink_on="a")
    started = a.flow("start", "--detach", str(dataflow))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    wait_for(lambda: len(received(tmp_path)) >= 30, "30 values across machines")
    info = run_info(a, run)
    assert info["status"] == "running"
    assert {n["id"]: n["status"] for n in info["nodes"]} == {"source": "running",
                                                             "sink": "running"}  # fmt: skip
    # the source runs in b's namespace, the sink in a's
    assert set(b.pids()) - before["b"], "no node process on machine b"
    assert {n["id"]: n["machine"] for n in info["nodes"]} == {"source": "b", "sink": "a"}
    nodes = a.flow("node", "list", run)
    assert nodes.returncode == 0, nodes.stderr
    assert "MACHINE" in nodes.stdout
    listed = [json.loads(line) for line in a.flow("node", "list", run, "--json").stdout.split("\n")
              if line]  # fmt: skip
    assert {n["id"]: n["machine"] for n in listed} == {"source": "b", "sink": "a"}
    rows = json.loads(a.flow("cluster", "status", "--json").stdout)["machines"]
    assert {row["name"]: row["nodes"] for row in rows} == {"a": 1, "b": 1}
    stopped = a.flow("stop", run)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    info = run_info(a, run)
    assert info["status"] == "stopped", info
    # both ended on STOP, within the grace: no SIGTERM needed on either machine
    assert {n["id"]: (n["status"], n["exit_code"]) for n in info["nodes"]} == {
        "source": ("stopped", 0), "sink": ("stopped", 0)}, info["nodes"]  # fmt: skip
    lines = received(tmp_path)
    values = [int(v) for v in lines if v.isdigit()]
    assert values == list(range(1, len(values) + 1)), "a gap or a repeat across machines"
    assert lines[-1] == "STOP" or "INPUT_CLOSED" in lines
    # nothing left on either machine: only what ran before the start
    wait_for(lambda: set(b.pids()) <= before["b"], "machine b's node processes gone")
    wait_for(lambda: set(a.pids()) <= before["a"], "machine a's node processes gone")
    # the member kept the source's log; its run keeper is gone too
    source_log = b.home / "runs" / info["id"] / "logs" / "source.log"
    assert "source up" in source_log.read_text()
    # `flow logs` on the coordinator shows it too, fetched from b over the link
    logs = a.flow("logs", run, "source")
    assert logs.returncode == 0, logs.stderr
    assert "source up" in logs.stdout


def test_a_node_on_an_unknown_or_absent_machine_is_refused_in_one_line(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    unknown = a.flow("start", "--detach", str(write_dataflow(tmp_path, "nowhere", "a")))
    assert unknown.returncode != 0
    # the dataflow-invalid form every validation error has: a header, one line per problem
    problems = unknown.stderr.strip().splitlines()[1:]
    assert len(problems) == 1, problems
    assert "deploy.machine: machine 'nowhere'" in problems[0]
    down = b.flow("down")
    assert down.returncode == 0, down.stderr
    absent = a.flow("start", "--detach", str(write_dataflow(tmp_path, "b", "a")))
    assert absent.returncode != 0
    line = absent.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "machine b is left, not connected" in line
    listed = a.flow("list", "--all", "--json")
    assert listed.stdout.strip() == "", "a refused start left a run behind"


def node_states(coordinator: Machine, run: str) -> dict[str, str]:
    return {n["id"]: n["status"] for n in run_info(coordinator, run)["nodes"]}


def start_across(a: Machine, b: Machine, folder: Path) -> tuple[str, set[int]]:
    """source on b feeding sink on a, 20 values through; (the run's id, b's node pids).
    `ready` first."""
    before = set(b.pids())
    started = a.flow("start", "--detach", str(write_dataflow(folder, source_on="b", sink_on="a")))
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for(lambda: len(received(folder)) >= 20, "20 values across machines")
    run = str(run_info(a, started.stdout.strip().split()[-1])["id"])
    return run, set(b.pids()) - before


def test_a_killed_member_loses_its_nodes_for_good_and_closes_their_inputs(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, _ = start_across(a, b, tmp_path)
    b.kill()
    seen = wait_for(lambda: node_states(a, run)["source"] == "lost", "source lost")
    print(f"\nnode lost {seen:.2f} s after its machine was killed")
    # the sink's tcp:// input closes by itself once the grace is over
    wait_for(lambda: "INPUT_CLOSED" in received(tmp_path), "the sink's input closed")
    wait_for(lambda: run_info(a, run)["status"] not in ("starting", "running"), "run ended")
    info = run_info(a, run)
    assert info["status"] == "failed", info
    nodes = {n["id"]: n for n in info["nodes"]}
    assert nodes["source"]["status"] == "lost"
    assert nodes["source"]["generation"] == 1, "the lost node was started again"
    assert nodes["sink"]["generation"] == 1
    # never re-placed: no source process anywhere that lives
    assert not [p for p in a.pids() if "source.py" in _cmdline(p)]


def test_a_partition_healed_within_the_grace_is_readopted(
    patient_cluster: dict[str, Machine], tmp_path: Path
) -> None:
    # the patient grace: the heal comes after a `flow list` saw `lost`, a CLI start a
    # loaded machine can make take seconds of the grace the member has to come back in
    a, b = ready(patient_cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    b.link(False)
    wait_for(lambda: node_states(a, run)["source"] == "lost", "source lost")
    b.link(True)
    wait_for(lambda: node_states(a, run) == {"source": "running", "sink": "running"},
             "source re-adopted")  # fmt: skip
    count = len(received(tmp_path))
    wait_for(lambda: len(received(tmp_path)) >= count + 20, "data flows again")
    assert source_pids <= set(b.pids()), "the source was restarted, not kept"
    stopped = a.flow("stop", run)
    assert stopped.returncode == 0, stopped.stderr
    info = run_info(a, run)
    assert info["status"] == "stopped", info
    assert [n["generation"] for n in info["nodes"]] == [1, 1]
    values = [int(v) for v in received(tmp_path) if v.isdigit()]
    assert values == sorted(set(values)), "a value delivered twice or out of order"
    assert "INPUT_CLOSED" not in received(tmp_path)[:-2]


def test_past_the_grace_the_members_nodes_stop_by_themselves(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    assert source_pids
    b.link(False)
    gone = wait_for(lambda: not (source_pids & set(b.pids())), "b's nodes stopped on b")
    print(f"\nb's nodes stopped {gone:.2f} s after the cut (grace {GRACE_S} s)")
    assert gone > GRACE_S, "the member stopped its nodes within the grace"
    wait_for(lambda: run_info(a, run)["status"] == "failed", "the run failed on a")
    assert node_states(a, run)["source"] == "lost"
    b.link(True)


def test_a_lost_coordinator_stops_nothing_within_the_grace(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    _, source_pids = start_across(a, b, tmp_path)
    a.kill()
    killed = time.monotonic()
    time.sleep(GRACE_S / 2)
    assert source_pids <= set(b.pids()), "the member stopped its nodes within the grace"
    wait_for(lambda: not (source_pids & set(b.pids())), "b's nodes stopped past the grace")
    assert time.monotonic() - killed > GRACE_S


def test_a_coordinator_restarted_within_the_grace_readopts_its_placed_run(
    patient_cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(patient_cluster, tmp_path)
    before = {"a": set(a.pids()), "b": set(b.pids())}
    run, source_pids = start_across(a, b, tmp_path)
    placed = {n["id"]: (n["generation"], n["pid"]) for n in run_info(a, run)["nodes"]}
    os.kill(int((a.home / "daemon.pid").read_text()), signal.SIGKILL)  # its keeper lives on
    killed = time.monotonic()
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stderr
    print(f"\ncoordinator back {time.monotonic() - killed:.2f} s after its daemon was killed")
    wait_for(lambda: node_states(a, run) == {"source": "running", "sink": "running"},
             "both nodes re-adopted")  # fmt: skip
    info = run_info(a, run)
    assert info["status"] == "running", info
    # the same processes, the same generations: nothing started again on either machine
    assert {n["id"]: (n["generation"], n["pid"]) for n in info["nodes"]} == placed
    listed = [json.loads(line) for line in a.flow("node", "list", run, "--json").stdout.split("\n")
              if line]  # fmt: skip
    assert {n["id"]: n["machine"] for n in listed} == {"source": "b", "sink": "a"}
    assert "MACHINE" in a.flow("node", "list", run).stdout
    # past the time the member would have stopped its nodes alone: it is back, so it did not
    time.sleep(max(0.0, killed + LOST_AFTER_S + b.grace_s + 1.0 - time.monotonic()))
    assert source_pids <= set(b.pids()), "the member stopped its nodes"
    assert node_states(a, run) == {"source": "running", "sink": "running"}
    count = len(received(tmp_path))
    wait_for(lambda: len(received(tmp_path)) >= count + 20, "data flows on")
    stopped = a.flow("stop", run)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    info = run_info(a, run)
    assert info["status"] == "stopped", info
    assert {n["id"]: n["status"] for n in info["nodes"]} == {"source": "stopped",
                                                             "sink": "stopped"}  # fmt: skip
    values = [int(v) for v in received(tmp_path) if v.isdigit()]
    assert values == list(range(1, len(values) + 1)), "a gap or a repeat across the restart"
    wait_for(lambda: set(b.pids()) <= before["b"], "machine b's node processes gone")
    # a's new daemon replaced the old one: only its own process may be new there
    wait_for(lambda: not [p for p in a.pids() if "sink.py" in _cmdline(p)
                          or "daemon.keeper" in _cmdline(p)], "machine a's run processes gone")


def test_a_remote_node_that_ended_while_the_coordinator_was_down_is_seen_ended(
    patient_cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(patient_cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    source = [p for p in source_pids if "source.py" in _cmdline(p)]
    assert len(source) == 1
    os.kill(int((a.home / "daemon.pid").read_text()), signal.SIGKILL)
    os.kill(source[0], signal.SIGKILL)  # its exit reaches b's daemon, not a's
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stderr
    wait_for(lambda: node_states(a, run)["source"] == "failed", "the source's exit applied")
    # its end closed the sink's input, which ended it: the run is over, nothing restarted
    wait_for(lambda: run_info(a, run)["status"] == "failed", "the run ended")
    nodes = {n["id"]: n for n in run_info(a, run)["nodes"]}
    assert nodes["source"]["generation"] == 1, "the source was started again"
    assert (nodes["sink"]["status"], nodes["sink"]["generation"]) == ("succeeded", 1), nodes
    values = [int(v) for v in received(tmp_path) if v.isdigit()]
    assert values == list(range(1, len(values) + 1)), "a gap or a repeat across the restart"
    wait_for(lambda: not [p for p in a.pids() + b.pids()
                          if "source.py" in _cmdline(p) or "sink.py" in _cmdline(p)],
             "no node left on either machine")  # fmt: skip


def test_a_coordinator_restarted_past_the_grace_finds_its_remote_nodes_lost(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    os.kill(int((a.home / "daemon.pid").read_text()), signal.SIGKILL)
    wait_for(lambda: not (source_pids & set(b.pids())), "b's nodes stopped past the grace")
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stderr
    wait_for(lambda: run_info(a, run)["status"] == "failed", "the run failed on a")
    nodes = {n["id"]: n for n in run_info(a, run)["nodes"]}
    assert nodes["source"]["status"] == "lost", nodes
    assert nodes["source"]["generation"] == 1, "the lost node was started again"
    # never re-placed, and the sink's keeper on a stopped it when the run ended
    assert not [p for p in a.pids() if "source.py" in _cmdline(p)]
    wait_for(lambda: not [p for p in a.pids() if "sink.py" in _cmdline(p)], "the sink gone")
    assert not [p for p in b.pids() if "source.py" in _cmdline(p)]


def test_a_coordinator_restarted_without_its_keeper_fails_the_run_and_stops_the_member(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, source_pids = start_across(a, b, tmp_path)
    daemon_pid = int((a.home / "daemon.pid").read_text())
    keeper = [p for p in a.pids() if "daemon.keeper" in _cmdline(p)]
    assert len(keeper) == 1
    for pid in (daemon_pid, keeper[0]):  # its keeper too: the sink cannot be re-adopted
        os.kill(pid, signal.SIGKILL)
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stderr
    info = run_info(a, run)
    assert info["status"] == "failed", info
    assert "not recovered" in info["error"]
    assert "its keeper here is gone" in info["error"]
    # nothing of it started again on a; b, reporting the run it hosts, is told to stop it
    assert not [p for p in a.pids() if "source.py" in _cmdline(p) or "sink.py" in _cmdline(p)]
    stopped = wait_for(lambda: not (source_pids & set(b.pids())), "b's nodes of the run stopped")
    assert stopped < GRACE_S, "b stopped them only past the grace, not when told to"


def test_a_members_keeper_lost_ends_its_nodes_there(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, pids = start_across(a, b, tmp_path)
    keeper = [p for p in pids if "daemon.keeper" in _cmdline(p)]
    source = [p for p in pids if "source.py" in _cmdline(p)]
    assert len(keeper) == 1, [_cmdline(p) for p in pids]
    assert len(source) == 1
    os.kill(keeper[0], signal.SIGKILL)
    wait_for(lambda: run_info(a, run)["status"] == "failed", "the run failed")
    nodes = {n["id"]: n for n in run_info(a, run)["nodes"]}
    assert nodes["source"]["status"] == "failed"
    assert nodes["source"]["generation"] == 1
    wait_for(lambda: source[0] not in b.pids(), "the source killed on b")
    assert connected(a, "b"), "the member's daemon did not live through it"


def test_a_remote_node_is_restarted_and_stopped_by_hand_from_the_coordinator(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = ready(cluster, tmp_path)
    run, pids = start_across(a, b, tmp_path)
    old = [p for p in pids if "source.py" in _cmdline(p)]
    assert old
    restarted = a.flow("node", "restart", run, "source")
    assert restarted.returncode == 0, restarted.stderr
    wait_for(lambda: node_states(a, run)["source"] == "running", "source running again")
    info = {n["id"]: n for n in run_info(a, run)["nodes"]}
    assert info["source"]["generation"] == 2
    assert old[0] not in b.pids()
    count = len(received(tmp_path))
    wait_for(lambda: len(received(tmp_path)) >= count + 10, "generation 2's values arrive")
    stopped = a.flow("node", "stop", run, "source")
    assert stopped.returncode == 0, stopped.stderr
    assert node_states(a, run)["source"] == "stopped"
    wait_for(lambda: not [p for p in b.pids() if "source.py" in _cmdline(p)], "source gone")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
