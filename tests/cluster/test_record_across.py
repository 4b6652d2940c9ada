"""Recording the output of a node placed on another machine (docs/recording.md): the
recorder runs on the coordinator and the node sends to it over a tcp:// CURVE edge."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import BOUND_S, NODES, wait_for
from mcap.reader import make_reader
from netns import Machine, connected

COUNT = 150


def test_a_remote_nodes_output_is_recorded_whole_on_the_coordinator(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a = cluster["a"]
    tmp_path.chmod(0o755)  # b reads the dataflow's folder too
    (tmp_path / "remote.yml").write_text(f"""
name: remote-rec
nodes:
  - id: counter
    path: {NODES}/counter.py
    deploy: {{machine: b}}
    inputs: {{tick: dora/timer/millis/10}}
    outputs: [count]
    env: {{COUNT: "{COUNT}"}}
  - id: sink
    path: {NODES}/seqsink.py
    inputs: {{data: {{source: counter/count, queue_size: 1000}}}}
""")
    wait_for(lambda: connected(a, "b"), "b connected")
    rec = tmp_path / "remote.mcap"
    done = a.flow("start", "--attach", "--record", str(rec), str(tmp_path / "remote.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"recording: {rec}: {COUNT} messages on 1 output over" in said, said
    assert "not recorded" not in said, said
    # read with the mcap library alone: every message of b's output, in order, with its
    # sequence number, the sender's timestamp as log time, and its value
    with rec.open("rb") as file:
        messages = [(channel.topic, message) for _, channel, message in
                    make_reader(file).iter_messages()]  # fmt: skip
    assert [topic for topic, _ in messages] == ["counter/count"] * COUNT
    records = [json.loads(message.data) for _, message in messages]
    assert [r["value"] for r in records] == [str(i) for i in range(1, COUNT + 1)]
    assert [m.sequence for _, m in messages] == list(range(1, COUNT + 1))
    assert all(r["kind"] == "str" and r["generation"] == 1 for r in records)
    stamps = [m.log_time for _, m in messages]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] < BOUND_S * 1e9


def test_flow_record_wires_a_running_remote_node_to_the_coordinator(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    """`flow record --topics` of a node on b, started after the run: wired live over
    tcp://, contiguous from seq 1, and what it says matches the file."""
    a = cluster["a"]
    tmp_path.chmod(0o755)
    (tmp_path / "live.yml").write_text(f"""
name: remote-live
nodes:
  - id: counter
    path: {NODES}/counter.py
    deploy: {{machine: b}}
    inputs: {{tick: dora/timer/millis/10}}
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs: {{data: counter/count}}
""")
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(tmp_path / "live.yml"))
    assert started.returncode == 0, started.stdout + started.stderr
    rec = tmp_path / "live.mcap"
    done = a.flow("record", "remote-live", "-o", str(rec), "--topics", "counter/count",
                  "--duration", "1.5s")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not recorded" not in done.stdout + done.stderr, done.stdout + done.stderr
    with rec.open("rb") as file:
        seqs = [message.sequence for _, _, message in make_reader(file).iter_messages()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > 20, seqs  # 1.5 s of a 10 ms tick, on a loaded machine
    assert f"recorded {len(seqs)} messages" in done.stdout, done.stdout
    assert a.flow("stop", "remote-live").returncode == 0


def test_a_remote_process_nodes_lines_are_recorded_on_the_coordinator(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    """`send_stdout_as` of a process node on b: b's keeper sends its lines to the recorder
    on a over tcp:// with b's machine key, as to any receiver on another machine."""
    a = cluster["a"]
    tmp_path.chmod(0o755)
    (tmp_path / "lines.yml").write_text("""
name: remote-lines
nodes:
  - id: counting
    path: seq
    args: "1 60"
    deploy: {machine: b}
    outputs: [lines]
    send_stdout_as: lines
""")
    wait_for(lambda: connected(a, "b"), "b connected")
    rec = tmp_path / "lines.mcap"
    done = a.flow("start", "--attach", "--record", str(rec), str(tmp_path / "lines.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"recording: {rec}: 60 messages on 1 output over" in said, said
    with rec.open("rb") as file:
        values = [json.loads(message.data)["value"] for _, _, message in
                  make_reader(file).iter_messages()]  # fmt: skip
    assert values == [str(i) for i in range(1, 61)]


def test_flow_record_wires_a_running_remote_process_node_to_the_coordinator(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    """`flow record` of a process node on b that runs already: the daemon tells b's keeper
    of the recorder's tcp:// edge (`wire_stdout`, with b's machine key), and the lines it
    prints from then on are in the file, without a gap."""
    a = cluster["a"]
    tmp_path.chmod(0o755)
    (tmp_path / "talk.yml").write_text("""
name: remote-talk
nodes:
  - id: talker
    path: sh
    args: -c 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.05; done'
    deploy: {machine: b}
    outputs: [lines]
    send_stdout_as: lines
""")
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(tmp_path / "talk.yml"))
    assert started.returncode == 0, started.stdout + started.stderr
    rec = tmp_path / "talk.mcap"
    done = a.flow("record", "remote-talk", "-o", str(rec), "--topics", "talker/lines",
                  "--duration", "1.5s")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not recorded" not in done.stdout + done.stderr, done.stdout + done.stderr
    with rec.open("rb") as file:
        messages = list(make_reader(file).iter_messages())
    numbers = [int(json.loads(message.data)["value"].split()[1]) for _, _, message in messages]
    assert len(numbers) > 5, done.stdout  # 1.5 s of a line every 50 ms, on a loaded machine
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert [m.sequence for _, _, m in messages] == list(range(1, len(numbers) + 1))
    # b cut off: its node cannot be wired to a recorder now, and is refused in one line
    # (it recorded nothing, and said so only as `0 recorded`, exit 0)
    cluster["b"].link(False)
    try:
        wait_for(lambda: '"status": "lost"' in a.flow("list", "--json").stdout, "talker lost")
        refused = a.flow("record", "remote-talk", "-o", str(tmp_path / "cut.mcap"))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.strip().splitlines() == [
            "error: cannot record talker/lines now: its machine is not connected (flow cluster "
            "status); --topics may leave it out"
        ]
    finally:
        cluster["b"].link(True)
    assert a.flow("stop", "remote-talk").returncode == 0
