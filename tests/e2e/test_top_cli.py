"""`flow top` as a person meets it: on a terminal (a real pseudo-terminal), piped, and with
bad options. The rates it shows are what each node does: a source that only sends is not
idle."""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import psutil
from helpers import REPO, flow, flow_env, start_stream

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed


def _rows(home: Path) -> dict[str, list[str]]:
    """`flow top` piped: node -> its cells (the table's header line checked)."""
    done = flow("top", home=home)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "RUN", "NODE", "STATUS", "PID", "CPU%", "RSS", "IN/S", "OUT/S", "QUEUED", "DROPPED",
        "P50", "P99",
    ]  # fmt: skip
    return {cells[1]: cells for cells in (line.split() for line in lines[1:])}


def test_piped_top_prints_one_table_with_in_and_out_rates(daemon: Path, tmp_path: Path) -> None:
    """The counter only sends (its tick is a timer, not a data input): OUT/S shows it; the
    sink only receives: IN/S. Piped, `flow top` prints one table and exits."""
    start_stream(daemon, tmp_path, "rates", tick_ms=10)
    deadline = time.monotonic() + BOUND_S
    while True:
        rows = _rows(daemon)
        counter, sink = rows["counter"], rows["sink"]
        if "-" not in (counter[7], sink[6]) and float(counter[7]) > 0 and float(sink[6]) > 0:
            break
        assert time.monotonic() < deadline, f"no rate shown: {rows}"
        time.sleep(0.5)
    assert float(counter[6]) == 0.0  # a timer tick is not a received message
    assert float(sink[7]) == 0.0
    assert flow("stop", "rates", home=daemon).returncode == 0


def test_top_without_runs_says_so(daemon: Path) -> None:
    done = flow("top", home=daemon)
    assert done.returncode == 0, done.stderr
    assert "no live runs" in done.stdout


def test_top_refuses_an_interval_that_is_not_positive(daemon: Path) -> None:
    for bad in ("0", "-1", "0s", "soon"):
        done = flow("top", "--interval", bad, home=daemon)
        assert done.returncode == 2, (bad, done.stdout)
        assert done.stderr.count("\n") == 1, done.stderr  # one line, never a traceback
        assert "--interval" in done.stderr
    assert flow("top", "--interval", "250ms", home=daemon).returncode == 0


@contextlib.contextmanager
def _top_on_a_terminal(home: Path, columns: int = 160) -> Iterator[pexpect.spawn]:
    """`flow top` in a pseudo-terminal, followed by `stty -a` on the same terminal: what the
    terminal looks like once flow top has ended. Killed on the way out if still there."""
    env = flow_env(home)
    env["COLUMNS"], env["LINES"] = str(columns), "40"
    # the shell catches SIGINT (its child gets the default): it outlives Ctrl-C to report
    top = f"{shlex.quote(sys.executable)} -m cli top --interval 200ms"
    command = f"trap : INT; {top}; echo exit=$?; stty -a"
    child = pexpect.spawn(
        "/bin/sh", ["-c", command], env=env, cwd=str(REPO), timeout=BOUND_S,
        encoding="utf-8", dimensions=(40, columns),
    )  # fmt: skip
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


def _ended_cleanly(child: pexpect.spawn, status: int = 0) -> None:
    child.expect(r"exit=(\d+)")
    assert child.match.group(1) == str(status), child.before
    child.expect(pexpect.EOF)
    settings = child.before.split()
    # cooked again: line editing and echo back on (cbreak mode turns both off)
    for setting in ("icanon", "echo"):
        assert setting in settings, child.before
        assert f"-{setting}" not in settings, child.before


def test_q_quits_top_and_restores_the_terminal(daemon: Path, tmp_path: Path) -> None:
    start_stream(daemon, tmp_path, "live", tick_ms=20)
    with _top_on_a_terminal(daemon) as child:
        child.expect("flow top")
        child.expect("OUT/S")
        child.expect("counter")
        child.expect("q or Ctrl-C quits")
        time.sleep(0.5)  # a refresh or two: still running, never ended by itself
        assert child.isalive()
        child.send("q")
        _ended_cleanly(child)
    assert flow("stop", "live", home=daemon).returncode == 0


def test_sigterm_ends_top_and_restores_the_terminal(daemon: Path) -> None:
    with _top_on_a_terminal(daemon) as child:
        child.expect("no live runs")
        (top,) = psutil.Process(child.pid).children()
        top.terminate()  # SIGTERM: a window manager, a `kill`
        child.expect_exact("\x1b[?25h")  # the cursor shown again
        _ended_cleanly(child, 143)
        assert "Traceback" not in child.before


def test_ctrl_c_quits_top_cleanly_and_no_runs_is_shown(daemon: Path) -> None:
    with _top_on_a_terminal(daemon) as child:
        child.expect("no live runs")
        child.sendintr()
        _ended_cleanly(child)
        assert "Traceback" not in child.before


def test_top_on_a_terminal_shows_the_latency_of_a_receiving_node(
    daemon: Path, tmp_path: Path
) -> None:
    """P50 and P99: the sink's send-to-receive latency over the last second, measured in the
    sink (a source that receives nothing shows `-`)."""
    start_stream(daemon, tmp_path, "lat", tick_ms=20)
    latency = r"\d+(?:\.\d+)?(?:us|ms|s)"
    with _top_on_a_terminal(daemon) as child:
        child.expect("P99")
        child.expect(rf"sink[^\n]*running[^\n]*\s{latency}\s[^\n]*\s{latency}\s")
        child.send("q")
        _ended_cleanly(child)
    assert flow("stop", "lat", home=daemon).returncode == 0


def test_top_fits_an_80_column_terminal_without_cutting_a_word(
    daemon: Path, tmp_path: Path
) -> None:
    """At 80 columns the least needed columns (PID, P99, then RSS, QUEUED) give way, so every
    header and value shown is whole (before, every column was cut to a few letters)."""
    start_stream(daemon, tmp_path, "narrow", tick_ms=20)
    with _top_on_a_terminal(daemon, columns=80) as child:
        deadline = time.monotonic() + BOUND_S
        while True:  # frame after frame, until both nodes show as running
            child.expect("q or Ctrl-C quits")  # the end of one whole frame
            frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)  # its text, no styles
            lines = [line.rstrip() for line in frame.replace("\r", "").split("\n")]
            running = {cells[1] for cells in (line.split() for line in lines)
                       if cells[:1] == ["narrow"] and cells[2:3] == ["running"]}  # fmt: skip
            if running >= {"counter", "sink"}:
                break
            assert time.monotonic() < deadline, lines
        header = next(line.split() for line in lines if line.startswith("RUN"))
        for name in ("RUN", "NODE", "STATUS", "CPU%", "IN/S", "OUT/S", "DROPPED", "P50"):
            assert name in header, header
        assert "PID" not in header  # the first to give way
        assert all(len(line) <= 80 for line in lines), lines
        assert "\u2026" not in frame  # no ellipsis: nothing was cut
        child.send("q")
        _ended_cleanly(child)
    assert flow("stop", "narrow", home=daemon).returncode == 0
