"""`flow run`'s node output: each line stamped when its keeper read it off the pipe (never
after a record the node logged later), and shown on a terminal as `flow logs` shows it."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
from helpers import BOUND_S, flow, flow_env, flow_run_ok, records, write_dataflow

# prints a pipe's worth of lines in one write, waits until its keeper has read all of them
# (nothing left unread in its stdout pipe), then logs a record stamped by the node itself
FLOOD = """\
import array
import fcntl
import logging
import sys
import termios
import time

from node_sdk import logbridge

logbridge.install()
sys.stdout.write("".join(f"line {i}\\n" for i in range(5000)))
sys.stdout.flush()
unread = array.array("i", [1])
while unread[0]:
    time.sleep(0.0005)
    fcntl.ioctl(1, termios.FIONREAD, unread)
logging.getLogger("flood").warning("done")
"""

GRAPH = """\
nodes:
  - id: flood
    path: flood.py
    connects: false
"""


def test_lines_are_never_stamped_after_a_record_logged_after_them(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, GRAPH, {"flood.py": FLOOD})
    flow_run_ok(flow_home, yml, "--name", "flood")
    (log,) = (flow_home / "runs").glob("*/logs/flood.log")
    stamps = records(log)
    done = stamps[-1]
    assert (done["s"], done["m"]) == ("log", "done"), done
    late = [r for r in stamps[:-1] if r["t"] > done["t"]]
    assert not late, f"{len(late)} lines stamped after the record: {late[-1]}, {done}"
    # `flow logs` merges by time: the record comes last, after every line
    tail = flow("logs", "flood", "flood", "--tail", "2", home=flow_home)
    assert tail.returncode == 0, tail.stderr
    shown = tail.stdout.splitlines()
    assert shown[0].endswith(" line 4999"), shown
    assert shown[1].endswith(" WARNING flood: done"), shown


TALKER = """\
print("plain line")
print("\\x1b[32mgreen\\x1b[0m and plain")
print("a\\tb")
import sys
print("on stderr", file=sys.stderr)
for i in range(300):
    print(f"many {i}")
"""


def test_a_terminal_shows_flow_run_lines_as_flow_logs_shows_them(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, GRAPH.replace("flood", "talker"), {"talker.py": TALKER})
    env = {**flow_env(flow_home), "TERM": "xterm-256color", "COLUMNS": "200"}

    def on_a_terminal(*args: str) -> list[str]:
        child = pexpect.spawn(sys.executable, ["-m", "cli", *args], env=env,
                              timeout=BOUND_S * 4, encoding="utf-8")  # fmt: skip
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        return str(child.before).replace("\r\n", "\n").splitlines()

    ran = [line for line in on_a_terminal("run", str(yml), "--name", "t") if " | " in line]
    logs = on_a_terminal("logs", "t")
    assert len(logs) == 304, logs
    assert sorted(ran) == sorted(logs)  # byte for byte, colour codes and all
    assert ran[0].startswith("\x1b["), ran[0]  # the node's name in its colour
    assert "\x1b[32mgreen" in "\n".join(ran)  # a node's own colours kept on a terminal


# a node whose failure, and a record's level and logger, carry what would drive a terminal
HOSTILE = r"""#!/bin/sh
printf '\036FLOWLOG{"t": 1700000000, "lvl": "X\\u009b2J", '
printf '"lg": "L\\u001b]0;TITLE\\u0007", "m": "forged"}\n'
printf 'boom \033]0;PWNED-TITLE\007 \302\233 2J \033[2J cleared\n' >&2
exit 4
"""


def test_a_failed_nodes_tail_and_a_records_head_never_drive_the_terminal(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, GRAPH.replace("flood.py", "hostile.sh"),
                         {"hostile.sh": HOSTILE})  # fmt: skip
    env = {**flow_env(flow_home), "TERM": "xterm-256color", "COLUMNS": "200"}
    shown = {}
    for args in (["run", str(yml), "--name", "h"], ["logs", "h"], ["list", "--all"]):
        child = pexpect.spawn(sys.executable, ["-m", "cli", *args], env=env,
                              timeout=BOUND_S * 4, encoding="utf-8")  # fmt: skip
        child.expect(pexpect.EOF)
        child.close()
        shown[args[0]] = str(child.before)
    for command, text in shown.items():
        for driver in ("\x9b", "\x1b]0;", "\x1b[2J"):
            assert driver not in text, (command, driver, text[-600:])
    assert "boom" in shown["run"]  # the tail is shown, made safe
    assert "exited 4" in shown["run"]
    assert "forged" in shown["logs"]
