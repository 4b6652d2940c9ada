"""The bounds of a node's stderr tail, of a `list` reply, and of a node's log file in bytes."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.keeper.logs import NodeLog
from daemon.model.keeper_messages import Exited, NodeState, decode, encode
from daemon.model.logformat import LogRecord
from daemon.model.run_rows import newest_within, run_info
from daemon.model.stderr_tail import LINE_BYTES, TAIL_BYTES, TAIL_LINES, bound_tail, cut_line


def _size(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def test_a_long_line_is_cut_at_a_character_with_a_marker() -> None:
    assert cut_line("short") == "short"
    assert cut_line("x" * LINE_BYTES) == "x" * LINE_BYTES
    line = cut_line("\U0001f600" * 70000)  # 280,000 bytes of 4-byte characters
    assert len(line.encode()) <= LINE_BYTES
    head, marker = line.split(" [… ")
    assert set(head) == {"\U0001f600"}
    assert marker == f"{280000 - len(head.encode())} bytes cut]"


def test_a_tail_keeps_its_newest_lines_within_its_bytes() -> None:
    assert bound_tail([]) == []
    short = [f"line {i}" for i in range(30)]
    assert bound_tail(short) == short[-TAIL_LINES:]
    tail = bound_tail(["E" * 70000] * 25 + ["the end"])
    assert tail[-1] == "the end"
    assert _size(tail) <= TAIL_BYTES
    assert len(tail) == 5  # four cut lines of about 1 KiB, and the last
    assert all(line.endswith("bytes cut]") for line in tail[:-1])


def test_keeper_messages_carry_a_bounded_tail_whatever_a_keeper_sends() -> None:
    tail = tuple("E" * 70000 for _ in range(20))
    assert _size(list(Exited("n", 1, 1, tail).tail)) <= TAIL_BYTES
    raw = json.dumps({"t": "exited", "node": "n", "generation": 1, "code": 1, "tail": tail})
    message = decode(raw.encode())
    assert isinstance(message, Exited)
    assert _size(list(message.tail)) <= TAIL_BYTES
    state = NodeState(generation=1, pid=5, code=1, alive=False, tail=tail)
    assert decode(encode(Exited("n", 1, 1, state.tail))) == Exited("n", 1, 1, state.tail)


def test_a_store_an_older_flow_wrote_is_read_back_bounded() -> None:
    run = {k: None for k in ("id", "name", "status", "path", "created", "ended", "error")}
    node = {k: None for k in ("node_id", "status", "pid", "generation", "restarts")}
    node |= {"exit_code": 1, "signal": None, "stderr_tail": json.dumps(["E" * 65536] * 20)}
    (read,) = run_info(run | {"degraded": None}, [node])["nodes"]
    assert _size(read["stderr_tail"]) <= TAIL_BYTES


def test_a_list_keeps_the_newest_runs_that_fit() -> None:
    runs = [{"id": str(i), "pad": "x" * 1000} for i in range(10)]
    kept = newest_within(runs, budget=3500)
    assert [r["id"] for r in kept] == ["7", "8", "9"]
    assert newest_within(runs[:1], budget=10) == runs[:1]  # the newest run always


def test_a_log_rotates_at_its_size_in_bytes(tmp_path: Path) -> None:
    log = NodeLog(path=tmp_path / "n.log", node_id="n", on_failure=lambda _: None,
                  max_bytes=4096)  # fmt: skip
    for _ in range(100):
        log.write_all([LogRecord(1.0, "stdout", "\U0001f600" * 100 + "\ufffd" * 50)])
    log.write_all([LogRecord(1.0, "stdout", "\x01" * 65536)])  # 393 KiB of JSON alone: cut
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["n.log", "n.log.1", "n.log.2", "n.log.3"]
    assert all(f.stat().st_size <= 4096 for f in files)
    last = json.loads((tmp_path / "n.log").read_text().splitlines()[-1])
    assert last["m"].startswith("\x01" * 400)
    assert last["m"].endswith("[… cut: over the log's 4096 bytes]")


def test_a_restart_is_one_line_of_the_log_saying_how_the_last_generation_ended(
    tmp_path: Path,
) -> None:
    log = NodeLog(tmp_path / "n.log", "n", on_failure=lambda cause: None)
    for generation, code in ((2, 1), (3, -11), (4, -40), (5, 0), (6, None)):
        log.note_restart(generation, generation - 1, code)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "n.log").read_text().splitlines()]
    assert [(line["lvl"], line["lg"], line["m"]) for line in lines] == [
        ("WARNING", "flow", "restarted as generation 2 (generation 1 exited 1)"),
        ("WARNING", "flow", "restarted as generation 3 (generation 2 ended by SIGSEGV)"),
        ("WARNING", "flow", "restarted as generation 4 (generation 3 ended by signal 40)"),
        ("INFO", "flow", "restarted as generation 5 (generation 4 exited 0)"),
        ("WARNING", "flow", "restarted as generation 6 (generation 5 ended)"),
    ]
