"""Recording and replay as a user runs them (docs/recording.md): `flow run --record`,
`flow replay`, `flow record` on a live run, and a recorder on a full disk. The files are
read with the `mcap` library's own reader, never with flow's code."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from helpers import KINDS, flow, flow_env, flow_run_ok, kinds_graph, stream_graph, wait_for
from mcap.reader import make_reader

from node_sdk import paths

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed
COUNT = 12
GRAPH = kinds_graph(COUNT, 1000)


def _not_json(token: str) -> None:
    raise AssertionError(f"a record with {token}, which only Python's json reads")


def _read(path: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """topic -> [(log_time, sequence, record)], and the file's schemas, attachments, metadata."""
    by_topic: dict[str, list[Any]] = {}
    with path.open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert summary is not None
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            assert channel.message_encoding == "json"
            assert schema is not None
            assert schema.encoding == "jsonschema"
            record = json.loads(message.data, parse_constant=_not_json)  # as Foxglove reads
            by_topic.setdefault(channel.topic, []).append(
                (message.log_time, message.sequence, record)
            )
        facts = {
            "channels": sorted(c.topic for c in summary.channels.values()),
            "attachments": {a.name: bytes(a.data) for a in reader.iter_attachments()},
            "metadata": {m.name: dict(m.metadata) for m in reader.iter_metadata()},
        }
    return by_topic, facts


def _value(record: dict[str, Any]) -> Any:
    """A record's value, decoded from the documented JSON form by hand."""
    kind = record["kind"]
    if kind == "str":
        return record["value"]
    if kind == "none":
        return None
    raw = base64.b64decode(record["data"])
    if kind == "bytes":
        return raw
    if kind == "numpy":
        return np.frombuffer(raw, dtype=record["dtype"]).reshape(record["shape"])
    assert kind == "arrow"
    column = pa.ipc.open_stream(raw).read_next_batch().column(0)
    assert str(column.type) == record["arrow_type"]
    return column


def _sink_lines(output: str) -> dict[str, list[str]]:
    """The sink's `got INPUT ...` lines, per input, in order (timestamps cut off)."""
    lines: dict[str, list[str]] = {}
    for match in re.finditer(r"sink\s+\|\s+\S+\s+got (\S+) (.*)", output):
        lines.setdefault(match.group(1), []).append(match.group(2))
    return lines


def test_run_record_has_every_message_and_replay_feeds_the_sink_the_same(
    flow_home: Path, tmp_path: Path
) -> None:
    """`flow run --record` writes every message of every output (all payload kinds, shared
    memory included) with its send time, seq and metadata, and the dataflow attached; then
    `flow replay --replace src` gives the sink the same values in the same order."""
    yml = tmp_path / "kinds.yml"
    yml.write_text(GRAPH)
    rec = tmp_path / "kinds.mcap"
    out = flow_run_ok(flow_home, yml, "--record", str(rec), timeout=BOUND_S)
    assert f"recording: {rec}: {COUNT * len(KINDS)} messages on {len(KINDS)} outputs" in out
    assert "not recorded" not in out
    assert oct(rec.stat().st_mode & 0o777) == "0o600"  # nobody else reads a recording
    by_topic, facts = _read(rec)
    assert facts["channels"] == sorted(f"src/{k}" for k in KINDS)
    assert facts["attachments"]["dataflow.yml"].decode() == GRAPH
    assert facts["metadata"]["flow.run"]["dataflow"] == str(yml)
    for kind in KINDS:
        messages = by_topic[f"src/{kind}"]
        assert [seq for _, seq, _ in messages] == list(range(1, COUNT + 1)), kind
        times = [t for t, _, _ in messages]
        assert times == sorted(times)
        assert abs(times[0] / 1e9 - time.time()) < 3600  # a wall-clock send time
        for i, (_, _, record) in enumerate(messages, start=1):
            # a NaN and an infinity as strings, named: standard JSON for every reader
            assert record["metadata"] == {"i": i, "tag": f"m{i}", "q": [i / 2, "NaN"],
                                          "top": "Infinity"}  # fmt: skip
            assert record["nonfinite"] == [["q", 1], ["top"]]
            assert record["seq"] == i
            value = _value(record)
            if kind == "text":
                assert value == f"hello {i}"
            elif kind == "raw":
                assert value == bytes([i, 0, 255])
            elif kind == "array":
                assert value.dtype == np.float32
                assert value.tolist() == (np.arange(6, dtype=np.float32).reshape(2, 3) + i).tolist()
            elif kind == "table":
                assert value.to_pylist() == [i, None, -i]
                assert value.type == pa.int64()
            elif kind == "big":
                assert value.shape == (1 << 20,)
                assert value.dtype == np.uint8
                assert int(value[0]) == int(value[-1]) == i
            elif kind == "point":  # a struct: the batch flow writes, read by Arrow's reader
                assert value.to_pylist() == [{"x": i, "y": i / 2}, {"x": i + 1, "y": -i / 2}]
            else:
                assert value is None
    original = _sink_lines(out)
    assert sorted(original) == sorted(KINDS)
    assert original["raw"][0].endswith("meta=1 q=[0.5, nan] top=inf"), original["raw"][0]
    info = flow("replay", str(rec), "--info", home=flow_home)
    assert info.returncode == 0, info.stderr
    assert re.search(rf"src/big\s+{COUNT}\b", info.stdout), info.stdout
    assert f"{COUNT * len(KINDS)} messages on {len(KINDS)} outputs" in info.stdout
    replay = flow("replay", str(rec), "--replace", "src", "--speed", "4", home=flow_home,
                  timeout=BOUND_S)  # fmt: skip
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"replayed {COUNT * len(KINDS)} messages of src" in replay.stdout
    assert _sink_lines(replay.stdout) == original


def test_replay_keeps_the_recorded_timing_scaled_by_speed(flow_home: Path, tmp_path: Path) -> None:
    """Played at --speed 0.5, the sink gets the 12 texts (30 ms apart when recorded) over
    about twice the recorded span: a lower bound only (a loaded machine is slower)."""
    yml = tmp_path / "kinds.yml"
    yml.write_text(GRAPH)
    rec = tmp_path / "kinds.mcap"
    flow_run_ok(flow_home, yml, "--record", str(rec), timeout=BOUND_S)
    by_topic, _ = _read(rec)
    recorded_s = (by_topic["src/text"][-1][0] - by_topic["src/text"][0][0]) / 1e9
    times = tmp_path / "times"
    replay = flow("replay", str(rec), "--replace", "src", "--speed", "0.5", "--env",
                  f"SINK_TIMES={times}", home=flow_home, timeout=BOUND_S)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    # the sink's own clock as each came (a log line's stamp is when its keeper read it)
    stamps = [float(at) for input_id, at in
              (line.split() for line in times.read_text().splitlines()) if input_id == "text"]
    assert len(stamps) == COUNT, replay.stdout
    assert stamps[-1] - stamps[0] >= 2 * recorded_s * 0.9, (stamps, recorded_s)


def _damaged_copy(rec: Path, into: Path, damage: dict[str, bytes]) -> None:
    """`rec` copied into `into` with the first record of each topic in `damage` replaced
    (the schema, channels, attachments and metadata as they were), by the mcap library."""
    from mcap.writer import Writer

    with rec.open("rb") as source, into.open("wb") as target:
        reader = make_reader(source)
        summary = reader.get_summary()
        assert summary is not None
        writer = Writer(target)
        writer.start(profile="flow", library="test")
        schemas = {sid: writer.register_schema(name=s.name, encoding=s.encoding, data=s.data)
                   for sid, s in summary.schemas.items()}  # fmt: skip
        channels = {cid: writer.register_channel(topic=c.topic, message_encoding=c.message_encoding,
                                                 schema_id=schemas[c.schema_id])
                    for cid, c in summary.channels.items()}  # fmt: skip
        for attachment in reader.iter_attachments():
            writer.add_attachment(attachment.log_time, attachment.create_time, attachment.name,
                                  attachment.media_type, attachment.data)  # fmt: skip
        for metadata in reader.iter_metadata():
            writer.add_metadata(metadata.name, dict(metadata.metadata))
        for _, channel, message in reader.iter_messages(log_time_order=True):
            data = damage.pop(channel.topic, message.data)
            writer.add_message(channels[channel.id], message.log_time, data,
                               message.publish_time, message.sequence)  # fmt: skip
        writer.finish()


def test_replay_skips_records_that_cannot_be_read_and_says_how_many(
    flow_home: Path, tmp_path: Path
) -> None:
    """A damaged or crafted recording: a record that is not JSON, a numpy record of an
    object dtype, an Arrow stream whose string offsets point past its data (the player sent
    it on, or crashed) are skipped, counted, the first cause said; the rest is played."""
    yml = tmp_path / "kinds.yml"
    yml.write_text(GRAPH)
    rec = tmp_path / "kinds.mcap"
    flow_run_ok(flow_home, yml, "--record", str(rec), timeout=BOUND_S)
    by_topic, _ = _read(rec)
    offsets = pa.py_buffer(np.array([0, 1 << 30, 2, 3], dtype=np.int32).tobytes())
    past = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"abc")])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([pa.field("v", pa.string())])) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays([past], names=["v"]))
    table = {**by_topic["src/table"][0][2], "arrow_type": "string",
             "data": base64.b64encode(sink.getvalue().to_pybytes()).decode()}  # fmt: skip
    array = {**by_topic["src/array"][0][2], "dtype": "|O"}
    damaged = tmp_path / "damaged.mcap"
    _damaged_copy(rec, damaged, {"src/text": b"{not json",
                                 "src/table": json.dumps(table).encode(),
                                 "src/array": json.dumps(array).encode()})  # fmt: skip
    replay = flow("replay", str(damaged), "--replace", "src", "--speed", "4", home=flow_home,
                  timeout=BOUND_S)  # fmt: skip
    assert replay.returncode == 0, replay.stdout + replay.stderr
    played = COUNT * len(KINDS) - 3
    assert f"replayed {played} messages of src" in replay.stdout, replay.stdout
    assert "(3 unreadable records skipped)" in replay.stdout
    assert "skipped a record of src/" in replay.stdout  # the player's stderr, in its log
    lines = _sink_lines(replay.stdout)
    assert [len(lines[k]) for k in ("text", "array", "table")] == [COUNT - 1] * 3, lines


def test_replay_of_a_cut_off_recording_plays_what_comes_before_the_cut(
    flow_home: Path, tmp_path: Path
) -> None:
    """A recording without its end (its recorder killed, a copy cut short) has no summary
    to seek with: its player read it as a finished one and ended in a traceback."""
    yml = tmp_path / "kinds.yml"
    yml.write_text(GRAPH)
    rec = tmp_path / "kinds.mcap"
    flow_run_ok(flow_home, yml, "--record", str(rec), timeout=BOUND_S)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(rec.read_bytes()[: rec.stat().st_size * 2 // 3])
    replay = flow("replay", str(cut), "--replace", "src", "--speed", "4", home=flow_home,
                  timeout=BOUND_S)  # fmt: skip
    said = replay.stdout + replay.stderr
    assert replay.returncode == 0, said
    assert "Traceback" not in said
    assert "was not finished (its recorder ended before writing its end)" in said, said
    played = re.search(r"replayed (\d+) messages of src", said)
    assert played is not None, said
    assert 0 < int(played.group(1)) < COUNT * len(KINDS)


def test_replay_refuses_bad_input_in_one_line(flow_home: Path, tmp_path: Path) -> None:
    not_mcap = tmp_path / "x.mcap"
    not_mcap.write_bytes(b"not an mcap file")
    fifo = tmp_path / "fifo.mcap"
    os.mkfifo(fifo)  # read, it would hold the command until something writes it
    for args, text in (
        ((str(fifo), "--info"), f"{fifo}: not a regular file"),
        ((str(fifo), "--replace", "src"), f"{fifo}: not a regular file"),
        ((str(tmp_path / "none.mcap"),), "no such recording"),
        ((str(not_mcap),), "not a readable MCAP file: it does not start as one (a recording "
                           "is the .mcap file flow record wrote)"),  # not `invalid magic: (110,`
    ):
        done = flow("replay", *args, home=flow_home)
        assert done.returncode == 2, done.stdout
        assert done.stderr.count("\n") == 1, done.stderr
        assert text in done.stderr


def test_ctrl_c_in_flow_run_finishes_the_recording(flow_home: Path, tmp_path: Path) -> None:
    """Ctrl-C at the terminal stops a `flow run --record` of an endless graph: the run is
    stopped, the recorder (never sent the terminal's SIGINT) finishes the file, which the
    mcap reader reads whole, contiguous from seq 1, and the account says what it holds."""
    import pexpect

    yml = tmp_path / "endless.yml"
    yml.write_text(stream_graph(10))
    rec = tmp_path / "endless.mcap"
    child = pexpect.spawn(sys.executable, ["-m", "cli", "run", str(yml), "--record", str(rec)],
                          env=flow_env(flow_home), timeout=BOUND_S, encoding="utf-8")  # fmt: skip
    try:
        child.expect(r"sink\s+\|\s+\S+ got data 20 ")
        child.sendintr()
        child.expect(r"recording: \S+: (\d+) messages on 1 output over")
        said = int(child.match.group(1))
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert "not recorded" not in str(child.before)
    by_topic, _ = _read(rec)
    seqs = [seq for _, seq, _ in by_topic["counter/count"]]
    assert seqs == list(range(1, said + 1))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_recorder_leaves_the_result_and_says_how_much_was_lost(
    flow_home: Path, tmp_path: Path
) -> None:
    """A recording on a 256 KiB tmpfs fills it: the run still succeeds with every message
    delivered, and its account says how many messages were not recorded, and why."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yml = tmp_path / "stream.yml"
        yml.write_text(GRAPH.replace('COUNT: "12"', 'COUNT: "40"'))
        done = flow("run", "--record", str(disk / "r.mcap"), str(yml), home=flow_home,
                    timeout=BOUND_S)  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert "succeeded" in out
        assert all(len(lines) == 40 for lines in _sink_lines(out).values()), out
        match = re.search(r"degraded: recording: \S+: (\d+) of (\d+) messages not recorded "
                          r"\(no space left on device\)", out)  # fmt: skip
        assert match, out
        assert 0 < int(match.group(1)) <= int(match.group(2)) == 40 * len(KINDS)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _recorders(home: Path, path: Path) -> list[int]:
    """pids of the recorder processes of this home that write `path`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if (b"daemon.recorder" in cmdline and str(path).encode() in cmdline
                and f"FLOW_HOME={home}".encode() in environ):
            found.append(int(entry))
    return found


def runs_of(home: Path) -> dict[str, dict[str, Any]]:
    listed = flow("list", "--all", "--json", home=home).stdout.splitlines()
    return {run["name"]: run for run in map(json.loads, listed)}


def test_flow_start_record_and_flow_record_a_live_run(daemon: Path, tmp_path: Path) -> None:
    """`flow start --record` records a daemon's run from its first message to its stop;
    `flow record RUN -o PATH --topics` records it from now on, contiguous from seq 1, and
    says how much; bad input is one line; a `flow record` killed with SIGKILL leaves no
    recorder behind once its lease runs out."""
    yml = tmp_path / "live.yml"
    yml.write_text(stream_graph(10))
    whole = tmp_path / "whole.mcap"
    started = flow("start", str(yml), "--detach", "--name", "live", "--record", str(whole),
                   home=daemon)  # fmt: skip
    assert started.returncode == 0, started.stderr
    rec = tmp_path / "live.mcap"
    done = flow("record", "live", "-o", str(rec), "--topics", "counter/count",
                "--duration", "1.5s", home=daemon, timeout=BOUND_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = int(re.search(r"recorded (\d+) messages", done.stdout).group(1))  # type: ignore[union-attr]
    by_topic, facts = _read(rec)
    assert facts["channels"] == ["counter/count"]
    seqs = [seq for _, seq, _ in by_topic["counter/count"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert said == len(seqs) > 0
    for args, text in (
        (("-o", str(rec)), "the file exists"),
        (("-o", str(tmp_path)), "a folder, not a file to record into"),
        (("-o", str(tmp_path / "t.mcap"), "--topics", " , "), "no NODE/OUTPUT in it"),
        (("-o", str(tmp_path / "n.mcap"), "--topics", "counter/nope"), "counter/nope"),
        # past the CLI's own checks (root may write in /proc, says access()): the recorder
        # cannot make it, and the command fails at once instead of recording nothing
        (("-o", "/proc/flow-test.mcap", "--duration", "30s"),
         "cannot record: cannot write /proc/flow-test.mcap"),
    ):
        refused = flow("record", "live", *args, home=daemon)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert text in refused.stderr
    assert runs_of(daemon)["live"]["degraded"] is None  # a refused `flow record` is not the run's
    killed = tmp_path / "k.mcap"
    held = subprocess.Popen(
        [sys.executable, "-m", "cli", "record", "live", "-o", str(killed)],
        env=flow_env(daemon), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOUND_S
        while not _recorders(daemon, killed):
            assert time.monotonic() < deadline, "flow record started no recorder"
            time.sleep(0.1)
    finally:
        held.kill()
        held.wait()
    wait_for(lambda: not _recorders(daemon, killed), "the recorder of a killed flow record to end")
    assert _recorders(daemon, whole)  # the whole run's recorder goes on
    assert flow("stop", "live", home=daemon).returncode == 0
    by_topic, facts = _read(whole)
    assert facts["channels"] == ["counter/count"]
    seqs = [seq for _, seq, _ in by_topic["counter/count"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > said


def test_flow_record_ends_when_its_recorder_is_killed(daemon: Path, tmp_path: Path) -> None:
    """A recorder killed mid-run is noticed at once: `flow record` ends with the recorder's
    ending and exit 1 instead of renewing a recording nobody writes."""
    yml = tmp_path / "live.yml"
    yml.write_text(stream_graph(20))
    assert flow("start", str(yml), "--detach", "--name", "live", home=daemon).returncode == 0
    path = tmp_path / "cut.mcap"
    held = subprocess.Popen(
        [sys.executable, "-m", "cli", "record", "live", "-o", str(path)],
        env=flow_env(daemon), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        log = paths.daemon_log(daemon)  # its line comes once the recorder said it is ready
        wait_for(lambda: f" to {path} (" in log.read_text(), "flow record's recorder ready")
        os.kill(_recorders(daemon, path)[0], signal.SIGKILL)
        _, err = held.communicate(timeout=120)  # without the watch it renews until killed
    finally:
        if held.poll() is None:
            held.kill()
            held.wait()
    assert held.returncode == 1, err
    assert "the recorder ended (killed by SIGKILL) before it finished the file" in err, err
    assert "Traceback" not in err
    # the unfinished file is read up to where it is cut, and said to be unfinished
    info = flow("replay", str(path), "--info", home=daemon)
    assert info.returncode == 0, info.stderr
    assert "was not finished" in info.stderr, info.stderr
    assert re.search(r"\d+ messages? on \d+ outputs? over", info.stdout), info.stdout
    assert flow("stop", "live", home=daemon).returncode == 0
