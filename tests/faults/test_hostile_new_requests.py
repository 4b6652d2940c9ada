"""Hostile input to the newer features (parameters, recording): refused in one line naming
the field at fault, and the daemon still answers (review of the day's features)."""

from __future__ import annotations

import json
import os
import socket
import tomllib
from pathlib import Path

import psutil
from fault_tools import diagnostics, run_info, tmpfs
from helpers import BOUND_S, REPO, daemon_down, flow, start_stream, stream_graph, wait_for
from procs import RawClient, daemon_pid

from daemon.model.pids import alive
from node_sdk import paths


def test_record_start_topics_must_be_a_list_not_a_string(daemon: Path, tmp_path: Path) -> None:
    # cattrs made a list of any iterable: "counter/count" became the topics "c", "o", ...
    start_stream(daemon, tmp_path, "rec")
    client = RawClient(daemon)
    try:
        path = str(tmp_path / "out.mcap")
        for topics in ("counter/count", {"counter/count": 1}):
            reply = client.request("record_start", {"run": "rec", "path": path, "topics": topics})
            assert not reply["ok"], reply
            assert reply["error"]["message"] == "field 'topics': expected a list", reply
        assert client.request("ping", {})["ok"]
    finally:
        client.close()
    assert not (tmp_path / "out.mcap").exists()
    assert flow("status", home=daemon).returncode == 0


def test_yaml_params_nested_deeper_than_a_node_reads_are_refused(
    flow_home: Path, tmp_path: Path
) -> None:
    # Accepted before, and then dropped by the node with a warning: it never saw the value.
    deep = "{b: " * 20 + "1" + "}" * 20
    yml = tmp_path / "deep.yml"
    yml.write_text(f"nodes:\n  - id: n\n    path: n.py\n    params: {{a: {deep}}}\n")
    (tmp_path / "n.py").write_text("")
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert f"{yml}:4: nodes[0].params.a: parameter 'a': nested deeper than 16" in done.stderr


def test_record_to_a_dangling_symlink_is_refused_before_the_run(
    flow_home: Path, tmp_path: Path
) -> None:
    # It passed the check (the link's target does not exist), then the recorder refused to
    # write through it: the run went on unrecorded, exit 0, "no such recording".
    link = tmp_path / "rec.mcap"
    link.symlink_to(tmp_path / "elsewhere.mcap")
    yml = tmp_path / "g.yml"
    yml.write_text(stream_graph(tick_ms=20))
    done = flow("run", str(yml), "--record", str(link), "--stop-after", "1s", home=flow_home)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"error: --record {link}: a symbolic link to nothing"), done
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "elsewhere.mcap").exists()


def test_replay_of_an_empty_or_tiny_file_says_it_is_not_an_mcap_file(
    flow_home: Path, tmp_path: Path
) -> None:
    for name, data in (("empty.mcap", b""), ("magic.mcap", b"\x89MCAP0\r\n")):
        path = tmp_path / name
        path.write_bytes(data)
        done = flow("replay", "--info", str(path), home=flow_home)
        assert done.returncode == 2, done
        assert done.stderr.startswith(f"error: {path} is not a readable MCAP file: "), done
        assert not done.stderr.rstrip().endswith(":"), done  # a reason, not nothing


def test_without_mcap_the_hint_names_the_distribution_to_install(
    flow_home: Path, tmp_path: Path
) -> None:
    # The hint said `pip install 'flow[record]'`: `flow` on PyPI is another project.
    shadow = tmp_path / "shadow" / "mcap"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no mcap here')\n")
    yml = tmp_path / "g.yml"
    yml.write_text(stream_graph(tick_ms=20))
    path = f"{shadow.parent}{os.pathsep}{REPO}"
    done = flow("run", str(yml), "--record", str(tmp_path / "r.mcap"), home=flow_home,
                env_extra={"PYTHONPATH": path})  # fmt: skip
    assert done.returncode == 2, done
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    assert f"pip install '{project}[record]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_recording_stopped_twice_at_once_stops_once_and_the_run_lives(
    daemon: Path, tmp_path: Path
) -> None:
    # Two record_stop at once (or a stop as the lease ran out, or as the run ended) read the
    # recorder's output from two tasks: trio's BusyResourceError answered "internal error",
    # and from the lease's task it failed the whole run ("failed in the daemon").
    start_stream(daemon, tmp_path, "twice", tick_ms=20)
    client = RawClient(daemon)
    try:
        path = tmp_path / "twice.mcap"
        reply = client.request("record_start", {"run": "twice", "path": str(path)})
        assert reply["ok"], reply
        recording = reply["body"]["recording"]
        for n in range(3):
            client.send_raw(json.dumps({"v": 1, "id": f"s{n}", "type": "record_stop",
                                        "body": {"recording": recording}}).encode())  # fmt: skip
        replies = [client.receive(timeout=BOUND_S) for _ in range(3)]
    finally:
        client.close()
    assert all(r is not None and r["ok"] for r in replies), replies
    summaries = {json.dumps(r["body"]["summary"], sort_keys=True) for r in replies if r}
    assert len(summaries) == 1, summaries
    assert path.stat().st_mode & 0o077 == 0
    assert run_info(daemon, "twice")["status"] == "running", diagnostics(daemon)
    stopped = flow("stop", "twice", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in paths.daemon_log(daemon).read_text()


def test_cluster_probe_of_a_text_without_its_path_is_refused(flow_home: Path) -> None:
    # The text was ignored and every pair of machines probed, as if no dataflow was given.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    up = flow("up", "--machine", "alpha", "--listen", f"tcp://127.0.0.1:{port}", home=flow_home)
    assert up.returncode == 0, up.stderr
    client = RawClient(flow_home)
    try:
        reply = client.request("cluster_probe", {"text": "nodes: [{id: a, path: a.py}]"})
        assert not reply["ok"], reply
        assert reply["error"]["message"] == "a dataflow's text needs its path", reply
        assert client.request("ping", {})["ok"]
    finally:
        client.close()
        daemon_down(flow_home)


def test_a_recorder_killed_mid_run_is_said_to_have_died(daemon: Path, tmp_path: Path) -> None:
    # It was reported as "the recorder did not finish within 20s", which it never tried.
    yml = tmp_path / "g.yml"
    yml.write_text(stream_graph(tick_ms=20))
    path = tmp_path / "killed.mcap"
    done = flow("start", str(yml), "--detach", "--name", "k", "--record", str(path), home=daemon)
    assert done.returncode == 0, done.stderr
    log = paths.daemon_log(daemon)  # its line comes once the recorder said it is ready
    wait_for(lambda: f" to {path} (" in log.read_text(), "the recorder ready")
    recorders = [p for p in psutil.Process(daemon_pid(daemon)).children()
                 if "daemon.recorder" in " ".join(p.cmdline())]  # fmt: skip
    assert len(recorders) == 1, (recorders, diagnostics(daemon))
    recorders[0].kill()
    wait_for(lambda: not alive(recorders[0].pid), "the recorder dead")  # a zombie till reaped
    said = f"recording: {path}: the recorder ended (killed by SIGKILL) before it finished the file"
    # the daemon watches its recorder: the run is degraded while it still runs, not at its end
    wait_for(lambda: said in (run_info(daemon, "k")["degraded"] or []), "the run marked degraded")
    assert run_info(daemon, "k")["status"] == "running"
    stopped = flow("stop", "k", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert said in stopped.stderr, (stopped.stderr, diagnostics(daemon))


ACK_FLOOD = """
from node_sdk import Node, channel
node = Node()
for n in range(2000):  # answers to parameter changes the daemon never sent
    node._params.answer(channel.encode(channel.ParamAck(10**9 + n, None)))
print("flooded", flush=True)
for event in node:
    pass
"""


def test_a_node_flooding_unknown_param_answers_does_not_fill_the_daemon_log(
    daemon: Path, tmp_path: Path
) -> None:
    # One warning line each: a node in a loop wrote daemon.log full (200,000 lines, 30 MB).
    (tmp_path / "flood.py").write_text(ACK_FLOOD)
    yml = tmp_path / "flood.yml"
    yml.write_text(f"nodes:\n  - id: flood\n    path: {tmp_path / 'flood.py'}\n"
                   "    inputs: {tick: dora/timer/millis/200}\n")  # fmt: skip
    done = flow("start", str(yml), "--detach", "--name", "ackflood", home=daemon)
    assert done.returncode == 0, done.stderr
    log = paths.daemon_log(daemon)
    wait_for(lambda: "flooded" in flow("logs", "ackflood", "flood", home=daemon).stdout,
             "the node sent its answers")  # fmt: skip
    # the daemon has read them all once it answers a request sent after the last one
    assert flow("param", "list", "ackflood", "flood", home=daemon).returncode == 0
    lines = [line for line in log.read_text().splitlines() if "unknown parameter change" in line]
    assert 1 <= len(lines) <= 12, len(lines)
    assert flow("status", home=daemon).returncode == 0


def test_record_into_a_folder_that_cannot_be_written_is_refused_before_the_run(
    flow_home: Path, tmp_path: Path
) -> None:
    # It passed (the folder exists), and the run went on with nothing recorded.
    folder = tmp_path / "readonly"
    yml = tmp_path / "g.yml"
    yml.write_text(stream_graph(tick_ms=20))
    with tmpfs(folder, "ro,size=1m"):
        target = folder / "r.mcap"
        done = flow("run", str(yml), "--record", str(target), "--stop-after", "1s",
                    home=flow_home)  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr == f"error: --record {target}: cannot write in {folder}\n", done.stderr
