"""Node logs as a user meets them: `flow run`, an attached `flow start`, `flow logs` and a
dynamic node's own terminal, all through the CLI (a pseudo-terminal where colour matters)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
from helpers import BOUND_S, flow, flow_env, write_dataflow

from daemon.model.logformat import LogRecord, strip_ansi
from daemon.store import Store
from node_sdk import paths

# `node | 12:00:01.234 ` : the head every shown line starts with
HEAD = r"^(?P<node>[\w.-]+) +\| \d\d:\d\d:\d\d\.\d\d\d "

TALKER = """\
import logging
import sys

from node_sdk import Node

log = logging.getLogger("talker")
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            log.info("first line\\nsecond line")
            try:
                1 / 0
            except ZeroDivisionError:
                log.exception("it failed")
            log.warning("careful")
            log.debug("hidden at INFO")
            print("\\x1b[31mred\\x1b[0m text", flush=True)
            # a title (OSC ended by BEL), a C1 CSI clearing the screen, a CR hiding text
            print("A \\x1b]0;title\\x07 B \\x9b2J C over\\rwrite", flush=True)
            print("plain err", file=sys.stderr, flush=True)
            break
"""

GRAPH = """\
nodes:
  - id: talker
    path: talker.py
    inputs:
      tick: flow/timer/millis/50
  - id: plain
    path: plain.sh
"""

PLAIN = """\
#!/bin/sh
echo "to stdout"
"""


def talker_run(tmp_path: Path) -> Path:
    return write_dataflow(tmp_path, GRAPH, {"talker.py": TALKER, "plain.sh": PLAIN})


def only_run_id(home: Path) -> str:
    (run_id,) = [p.name for p in (home / "runs").iterdir()]
    return run_id


def test_one_format_everywhere_every_line_prefixed_read_without_a_daemon(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = talker_run(tmp_path)
    ran = flow("run", str(yml), home=flow_home)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_lines = [line for line in ran.stdout.splitlines() if " | " in line]
    assert "red text" in ran.stdout
    assert "\x1b" not in ran.stdout  # piped: the node's colour is left out
    # no daemon is running: flow logs reads the files, finding the run in the store
    run_id = only_run_id(flow_home)
    logs = flow("logs", run_id[:13], home=flow_home)
    assert logs.returncode == 0, logs.stderr
    log_lines = logs.stdout.splitlines()
    # `flow run` prints lines as they arrive, `flow logs` by time: the same lines
    assert sorted(log_lines) == sorted(run_lines)
    assert all(re.match(HEAD, line) for line in log_lines), log_lines
    talker = [line for line in log_lines if line.startswith("talker")]
    assert any(line.endswith("INFO talker: first line") for line in talker)
    assert any(line.endswith("INFO talker: second line") for line in talker)
    traceback = [line for line in talker if " ERROR talker: " in line]
    assert traceback[-1].endswith("ERROR talker: ZeroDivisionError: division by zero")
    assert any(line.endswith("ERROR talker: Traceback (most recent call last):") for line in talker)
    assert any(line.endswith("stderr: plain err") for line in talker)
    assert not any("hidden at INFO" in line for line in talker)


def test_attached_start_prints_what_flow_logs_prints(daemon: Path, tmp_path: Path) -> None:
    yml = talker_run(tmp_path)
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "start", str(yml), "--name", "att"],
        env={**flow_env(daemon), "TERM": "xterm-256color", "COLUMNS": "200"},
        timeout=BOUND_S * 4, encoding="utf-8",
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    shown = [strip_ansi(line) for line in str(child.before).replace("\r\n", "\n").splitlines()]
    node_lines = [line for line in shown if re.match(HEAD, line)]
    logs = flow("logs", "att", home=daemon)
    assert logs.returncode == 0, logs.stderr
    assert sorted(node_lines) == sorted(logs.stdout.splitlines())
    last = "ERROR talker: ZeroDivisionError: division by zero"
    assert any(line.endswith(last) for line in node_lines)


def test_grep_level_json_and_colour_only_on_a_terminal(flow_home: Path, tmp_path: Path) -> None:
    ran = flow("run", str(talker_run(tmp_path)), home=flow_home)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = only_run_id(flow_home)
    grep = flow("logs", run_id, "--grep", "INFO", home=flow_home).stdout.splitlines()
    assert [line.split(": ", 1)[1] for line in grep] == ["first line", "second line"]
    warnings = flow("logs", run_id, "--level", "warning", home=flow_home).stdout
    assert "careful" in warnings
    assert "ZeroDivisionError" in warnings
    assert "stderr: plain err" in warnings  # a stderr line counts as WARNING
    assert "first line" not in warnings
    assert "to stdout" not in warnings
    errors = flow("logs", run_id, "talker", "--level", "ERROR", home=flow_home).stdout
    assert "careful" not in errors
    assert "division by zero" in errors
    bad = flow("logs", run_id, "--level", "loud", home=flow_home)
    assert bad.returncode == 2
    assert "unknown level 'loud'" in bad.stderr
    assert "Traceback" not in bad.stderr
    # --json: one object per record, the multi-line message whole; colour gone when piped
    rows = [json.loads(line) for line in flow("logs", run_id, "--json", home=flow_home).stdout
            .splitlines()]  # fmt: skip
    assert {tuple(sorted(row)) for row in rows} == {
        ("level", "logger", "message", "node", "stream", "time")
    }
    by_message = {row["message"]: row for row in rows}
    first = by_message["first line\nsecond line"]
    assert (first["node"], first["level"], first["stream"]) == ("talker", "INFO", "log")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert by_message["red text"]["stream"] == "stdout"
    assert by_message["red text"]["level"] is None
    assert any(row["message"].startswith("it failed\nTraceback") for row in rows)
    piped = flow("logs", run_id, "talker", home=flow_home).stdout
    assert "red text" in piped
    assert "\x1b" not in piped
    # every character the node printed is shown, none of its control codes acts
    shown = "A  B \\x9b2J C over\\rwrite"
    assert shown in piped
    assert "\x9b" not in piped
    assert "\r" not in piped
    # on a terminal the node's own colour is kept
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "logs", run_id, "talker"],
        env={**flow_env(flow_home), "TERM": "xterm-256color", "COLUMNS": "200"},
        timeout=BOUND_S, encoding="utf-8",
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert re.search(r"\x1b\[31mred\x1b\[0m text", str(child.before)), repr(child.before)
    assert shown in str(child.before), repr(child.before)
    assert "\x1b]" not in str(child.before)
    assert "\x9b" not in str(child.before)


def test_respects_the_programs_logging_configuration(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """\
        nodes:
          - id: early
            path: early.py
            inputs: {tick: flow/timer/millis/50}
          - id: late
            path: late.py
            inputs: {tick: flow/timer/millis/50}
          - id: bare
            path: bare.py
            inputs: {tick: flow/timer/millis/50}
        """,
        {
            # basicConfig before Node(): its level and format stay, each record shows once
            "early.py": """\
                import logging
                from node_sdk import Node
                logging.basicConfig(level=logging.DEBUG, format="EARLY %(levelname)s %(message)s")
                with Node() as node:
                    next(iter(node))
                    logging.getLogger("x").debug("early debug")
            """,
            # basicConfig after Node() still takes effect
            "late.py": """\
                import logging
                from node_sdk import Node
                with Node() as node:
                    logging.basicConfig(level=logging.DEBUG, format="LATE %(message)s")
                    next(iter(node))
                    logging.getLogger("x").debug("late debug")
            """,
            # nothing configured: flow's records at FLOW_LOG_LEVEL (INFO)
            "bare.py": """\
                import logging
                from node_sdk import Node
                with Node() as node:
                    next(iter(node))
                    logging.getLogger("x").info("bare info")
                    logging.getLogger("x").debug("bare debug")
            """,
        },
    )
    ran = flow("run", str(yml), home=flow_home)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout
    assert out.count("early debug") == 1, out
    assert "stderr: EARLY DEBUG early debug" in out
    assert out.count("late debug") == 1
    assert "stderr: LATE late debug" in out
    assert out.count("bare info") == 1
    assert "INFO x: bare info" in out
    assert "bare debug" not in out


DYNAMIC_GRAPH = """\
nodes:
  - id: ticker
    path: ticker.py
    inputs: {tick: flow/timer/millis/50}
    outputs: [n]
  - id: viewer
    path: dynamic
    inputs: {n: ticker/n}
"""

TICKER = """\
from node_sdk import Node
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            node.send_output("n", b"x")
"""

VIEWER = """\
import logging
import sys
from node_sdk import Node

log = logging.getLogger("viewer")
with Node("viewer", dataflow=sys.argv[1]) as node:
    next(e for e in node if e["type"] == "INPUT")
    log.info("viewer saw an input")
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
"""


def test_dynamic_node_prints_readable_lines_and_stores_them(daemon: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, DYNAMIC_GRAPH, {"ticker.py": TICKER, "viewer.py": VIEWER})
    started = flow("start", str(yml), "--detach", "--name", "dyn", home=daemon)
    assert started.returncode == 0, started.stderr
    viewer = subprocess.run(
        [sys.executable, str(tmp_path / "viewer.py"), "dyn"],
        env=flow_env(daemon), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert viewer.returncode == 0, viewer.stderr
    shown = viewer.stderr.splitlines()
    assert "FLOWLOG" not in viewer.stderr
    assert "\x1e" not in viewer.stderr
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO viewer: viewer saw an input", line)
               for line in shown), shown  # fmt: skip
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} (INFO|ERROR) viewer: ", line) for line in shown)
    assert shown[-1].endswith("ERROR viewer: KeyError: 'missing'")
    logs = flow("logs", "dyn", "viewer", home=daemon)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert any(line.endswith("INFO viewer: viewer saw an input") for line in lines), lines
    assert lines[-1].endswith("ERROR viewer: KeyError: 'missing'")
    assert all(re.match(HEAD, line) for line in lines)
    # a program that configured logging prints each record once, its way; flow stores it
    configured = subprocess.run(
        [sys.executable, "-c", "import logging, runpy, sys; "
         "logging.basicConfig(format='MINE %(levelname)s %(message)s'); "
         "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
         str(tmp_path / "viewer.py"), "dyn"],
        env=flow_env(daemon), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    assert configured.stderr.count("viewer saw an input") == 1, configured.stderr
    assert "MINE INFO viewer saw an input" in configured.stderr
    again = flow("logs", "dyn", "viewer", "--grep", "saw an input", home=daemon).stdout
    assert len(again.splitlines()) == 2, again  # both attachments' records are stored
    logs = flow("logs", "dyn", "viewer", home=daemon)
    no_node = flow("logs", "dyn", "nosuchnode", home=daemon)
    assert no_node.returncode == 1, no_node.stderr  # a failed lookup, as `flow node`'s
    assert "no node 'nosuchnode'" in no_node.stderr
    assert flow("stop", "dyn", home=daemon).returncode == 0
    down = flow("down", home=daemon)
    assert down.returncode == 0, down.stderr
    # the daemon is gone: the run is found by name in the store, the files are read
    offline = flow("logs", "dyn", "viewer", home=daemon)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == logs.stdout
    missing = flow("logs", "nosuchrun", home=daemon)
    no_node = flow("logs", "dyn", "nosuchnode", home=daemon)
    assert no_node.returncode == 1, no_node.stderr
    assert "no node 'nosuchnode' in run dyn" in no_node.stderr
    assert missing.returncode == 1
    assert "no run with ID or name 'nosuchrun'" in missing.stderr


def test_follow_ends_with_the_runs_result(daemon: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """\
        nodes:
          - id: quitter
            path: quitter.py
            inputs: {tick: flow/timer/millis/100}
        """,
        {
            "quitter.py": """\
                import sys
                from node_sdk import Node
                with Node() as node:
                    for i, event in enumerate(node):
                        print("tick", i, flush=True)
                        if i == 10:
                            print("giving up", file=sys.stderr, flush=True)
                            sys.exit(3)
            """
        },
    )
    started = flow("start", str(yml), "--detach", "--name", "quits", home=daemon)
    assert started.returncode == 0, started.stderr
    followed = flow("logs", "quits", "-f", home=daemon)
    assert followed.returncode == 1, followed.stdout + followed.stderr
    out = followed.stdout.splitlines()
    assert any(line.endswith("tick 10") for line in out), out
    ended = [i for i, line in enumerate(out) if re.fullmatch(r"run quits \([\w-]+\) failed", line)]
    assert ended, out  # the result, then how each node ended
    assert out[ended[0] + 1 :] == ["  quitter  exited 3"], out
    as_json = flow("logs", "quits", "-f", "--json", home=daemon)
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout.splitlines()[-1])["run"]
    assert (result["name"], result["status"]) == ("quits", "failed")
    assert result["failed_nodes"] == {"quitter": "exited 3"}


def test_follow_without_a_daemon_follows_a_flow_run(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(
        tmp_path,
        """\
        nodes:
          - id: slow
            path: slow.py
            inputs: {tick: flow/timer/millis/100}
        """,
        {
            "slow.py": """\
                from node_sdk import Node
                with Node() as node:
                    for i, event in enumerate(node):
                        print("slow tick", i, flush=True)
                        if i == 20:
                            break
            """
        },
    )
    running = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml)], env=flow_env(flow_home),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOUND_S
        # the node's first line is logged: the run is recorded in the store by then
        while not list(flow_home.glob("runs/*/logs/slow.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        run_id = only_run_id(flow_home)
        followed = flow("logs", run_id, "-f", home=flow_home, timeout=BOUND_S * 4)
        assert followed.returncode == 0, followed.stderr
        out = followed.stdout.splitlines()
        # every line, then the result and how each node ended
        assert out[-3].endswith("slow tick 20"), out
        assert re.fullmatch(r"run \S+ succeeded", out[-2]), out
        assert out[-1] == "  slow  exited 0", out
        assert running.wait(BOUND_S) == 0
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()


def test_follow_without_a_daemon_does_not_wait_on_a_run_nobody_runs(flow_home: Path) -> None:
    # what a daemon killed with SIGKILL leaves: a run still `running`, its log file
    run_id = "01a20000-0000-7000-8000-000000000001"
    store = Store.open(paths.state_db(flow_home))
    store.create_run(run_id, "orphaned", "/x.yml", [("cam", "running")], "daemon", {})
    store.update_run(run_id, status="running")
    store.close()
    log = paths.node_log(flow_home, run_id, "cam")
    log.parent.mkdir(parents=True)
    log.write_text(LogRecord(1.0, "stdout", "last frame").to_json() + "\n")
    followed = flow("logs", "orphaned", "-f", home=flow_home, timeout=BOUND_S * 2)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines()[0].endswith("last frame")
    assert "recorded as running but no daemon runs it: flow up recovers it" in followed.stderr
