"""An attached `flow start` interrupted at any moment after it asked for the start stops
that run (Ctrl-C, or SIGTERM as a first Ctrl-C), says so and exits as documented; run names
that could write into a terminal or read as a run id are refused in one line.

The moment "the start request is on its way and not answered yet" is held open for as long
as a test needs: the daemon is stopped (SIGSTOP) before the CLI sends, and the CLI says when
it has sent (FLOW_TEST_HOOKS=start-sent); the daemon, continued, then answers."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest
from helpers import BOUND_S, NODES, flow, flow_env, pty_ended, wait_for

COUNTER = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/100
    outputs: [count]
"""


def active(home: Path) -> list[dict[str, Any]]:
    done = flow("list", "--json", home=home)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def spawn(home: Path, yml: Path, name: str) -> pexpect.spawn:
    env = flow_env(home, {"FLOW_TEST_HOOKS": "start-sent", "COLUMNS": "200"})
    return pexpect.spawn(
        sys.executable, ["-m", "cli", "start", str(yml), "--attach", "--name", name],
        env=env, timeout=BOUND_S * 2, encoding="utf-8",
    )  # fmt: skip


@contextmanager
def daemon_held(home: Path) -> Iterator[None]:
    """The daemon stopped (SIGSTOP) for the block, continued after it, whatever happens."""
    pid = int((home / "daemon.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def ended(child: pexpect.spawn) -> tuple[int | None, str]:
    """Wait for the CLI to exit: its exit status and its output without colours."""
    status, text = pty_ended(child)
    return status, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def no_run_left(home: Path, name: str) -> None:
    wait_for(lambda: not [r for r in active(home) if r["name"] == name], f"{name} ended")
    runs = [r for r in map(json.loads, flow("list", "--all", "--json", home=home)
                           .stdout.splitlines()) if r["name"] == name]  # fmt: skip
    assert [r["status"] for r in runs] == ["stopped"], runs


@pytest.mark.parametrize("presses", [1, 2, 3])
def test_ctrl_c_while_the_start_request_is_in_flight_stops_the_run(
    daemon: Path, tmp_path: Path, presses: int
) -> None:
    yml = tmp_path / "counter.yml"
    yml.write_text(COUNTER)
    name = f"inflight{presses}"
    child = spawn(daemon, yml, name)
    with daemon_held(daemon):
        child.expect("test hook: start request sent")
        for press, what in enumerate(("stop the run", "kill the run", "kill the run and detach")):
            if press == presses:
                break
            child.sendintr()  # each press is said before the next: none is merged with one
            child.expect(f"Ctrl-C: will {what} as soon as the daemon has started it")
    status, text = ended(child)
    assert re.search(rf"started run {name} \([\w-]+\)", text), text
    if presses < 3:
        assert re.search(rf"run {name} \([\w-]+\) stopped", text), text
        assert status == 0, text
    else:
        assert "killing the run (Ctrl-C three times) and detaching" in text
        assert status == 130, text
    assert "Traceback" not in text
    no_run_left(daemon, name)


def test_ctrl_c_once_the_start_was_answered_stops_the_run(daemon: Path, tmp_path: Path) -> None:
    """The moment after the reply and before the log files are known (the window where a
    Ctrl-C used to end the CLI alone) is held open by stopping the daemon then."""
    yml = tmp_path / "counter.yml"
    yml.write_text(COUNTER)
    child = spawn(daemon, yml, "answered")
    child.expect(r"started run answered \([\w-]+\); Ctrl-C stops it")
    with daemon_held(daemon):
        child.sendintr()
    status, text = ended(child)
    assert re.search(r"run answered \([\w-]+\) stopped", text), text
    assert status == 0, text
    no_run_left(daemon, "answered")


@pytest.mark.parametrize("moment", ["in flight", "following"])
def test_sigterm_to_an_attached_start_stops_the_run(
    daemon: Path, tmp_path: Path, moment: str
) -> None:
    yml = tmp_path / "counter.yml"
    yml.write_text(COUNTER)
    name = "term" + moment.split()[0]
    child = spawn(daemon, yml, name)
    if moment == "in flight":
        with daemon_held(daemon):
            child.expect("test hook: start request sent")
            os.kill(child.pid, signal.SIGTERM)
            child.expect("SIGTERM: will stop the run as soon as the daemon has started it")
    else:
        child.expect(r"started run termfollowing \([\w-]+\); Ctrl-C stops it")
        wait_for(lambda: any(r["name"] == name and r["status"] == "running"
                             for r in active(daemon)), "the run is running")  # fmt: skip
        os.kill(child.pid, signal.SIGTERM)
    status, text = ended(child)
    assert "stopping the run" in text, text
    assert re.search(rf"run {name} \([\w-]+\) stopped", text), text
    assert status == 0, text
    no_run_left(daemon, name)


BAD_NAMES = [
    ("evil\x1b]0;pwned\x07\x1b[2J", "holds U+001B, which is not printable"),
    ("two\nlines", "holds U+000A, which is not printable"),
    ("abc\u202edef", "holds U+202E, which is not printable"),
    ("", "is empty"),
    (" ", "is blank"),
    (" padded", "begins or ends with a space"),
    ("01a22f8f", "reads as the start of a run id"),
    ("x" * 257, "is 257 characters, more than 256"),
]


def test_a_bad_run_name_is_refused_in_one_line(daemon: Path, tmp_path: Path) -> None:
    """Each of BAD_NAMES, one daemon for them all (a daemon each cost a start apiece)."""
    yml = tmp_path / "counter.yml"
    yml.write_text(COUNTER)
    named = tmp_path / "named.yml"
    for name, why in BAD_NAMES:
        for argv in (["start", str(yml), "--detach"], ["run", str(yml), "--stop-after", "1s"]):
            done = flow(*argv, "--name", name, home=daemon)
            said = (name, argv, done.stdout, done.stderr)
            assert done.returncode == 2, said
            assert done.stderr.count("\n") == 1, said
            assert done.stderr.startswith("error: --name "), said
            assert why in done.stderr, said
            assert "\x1b" not in done.stderr
            assert "\u202e" not in done.stderr
        named.write_text(f"name: {json.dumps(name)}\n" + COUNTER)
        for argv in (["start", str(named), "--detach"], ["check", str(named)]):
            done = flow(*argv, home=daemon)
            said = (name, argv, done.stdout, done.stderr)
            assert done.returncode == 2, said
            problems = [line for line in done.stderr.splitlines() if "named.yml:1: name:" in line]
            assert len(problems) == 1, said
            assert why in problems[0], said
            assert "\x1b" not in done.stderr
            assert "\u202e" not in done.stderr
    assert active(daemon) == []


def test_a_printable_name_with_spaces_and_letters_is_kept(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "counter.yml"
    yml.write_text(COUNTER)
    for name in ("nightly run 42", "café-ünïcode", "run-01a22f8f"):
        done = flow("start", str(yml), "--detach", "--name", name, home=daemon)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split(maxsplit=1)[1].strip() == name
        assert flow("stop", name, home=daemon).returncode == 0
