"""Settings through the CLI: `flow config`, a bad value refused in one line, values that reach
the daemon, its run keepers and its nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import daemon_down, daemon_up, flow, flow_env, write_dataflow

PROBE = """
import json, logging, os
from node_sdk import Node

with Node() as node:
    cfg = json.loads(os.environ["FLOW_NODE_CONFIG"])
    for i in range(60):
        print(f"probe line {i} " + "x" * 200, flush=True)
    logging.info("info-line")
    logging.warning("warning-line")
    print("timeouts", cfg["start_timeout_s"], cfg["send_timeout_s"], flush=True)
"""


def test_flow_config_says_where_each_value_came_from(flow_home: Path) -> None:
    (flow_home / "config.toml").write_text('start_timeout = "2m"\nlog_max_bytes = "1GiB"\n')
    env = {"FLOW_START_TIMEOUT": "45s", "FLOW_DAEMON_LOG_LEVEL": "debug"}
    done = flow("config", home=flow_home, env_extra=env)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert done.stdout.splitlines()[0].split() == ["KEY", "VALUE", "SOURCE", "ENVIRONMENT"]
    assert rows == {
        "start_timeout": ["45s", "environment", "FLOW_START_TIMEOUT"],
        "daemon_grace": ["30s", "default", "FLOW_DAEMON_GRACE"],
        "send_timeout": ["10s", "default", "FLOW_SEND_TIMEOUT"],
        "log_max_bytes": ["1GiB", "config.toml", "FLOW_LOG_MAX_BYTES"],
        "cluster_heartbeat": ["1s", "default", "FLOW_CLUSTER_HEARTBEAT"],
        "cluster_lost_after": ["3s", "default", "FLOW_CLUSTER_LOST_AFTER"],
        "cluster_grace": ["30s", "default", "FLOW_CLUSTER_GRACE"],
        "daemon_log_level": ["DEBUG", "environment", "FLOW_DAEMON_LOG_LEVEL"],
        "log_level": ["INFO", "default", "FLOW_LOG_LEVEL"],
    }
    assert "\x1b[" not in done.stdout  # piped: plain text
    assert f"config file: {flow_home / 'config.toml'}" in done.stderr
    lines = flow("config", "--json", home=flow_home, env_extra=env).stdout.splitlines()
    got = {row["key"]: row for row in map(json.loads, lines)}
    assert got["log_max_bytes"]["value"] == 1 << 30
    assert got["log_max_bytes"]["source"] == "config.toml"
    assert got["start_timeout"]["value"] == 45.0
    assert got["send_timeout"] | {"help": ""} == {
        "key": "send_timeout",
        "value": 10.0,
        "text": "10s",
        "source": "default",
        "env": "FLOW_SEND_TIMEOUT",
        "help": "",
    }


def test_a_bad_variable_stops_flow_up_in_one_line(flow_home: Path) -> None:
    done = flow("up", home=flow_home, env_extra={"FLOW_START_TIMEOUT": "abc"})
    assert done.returncode == 2
    assert done.stderr == (
        "error: FLOW_START_TIMEOUT=abc (environment): expected a duration like 30s\n"
    )
    assert not (flow_home / "daemon.pid").exists()
    # and the value the old parser refused with an error naming nothing is fine now
    assert flow("config", home=flow_home, env_extra={"FLOW_LOG_MAX_BYTES": "16M"}).returncode == 0


def test_a_bad_config_file_stops_flow_run_and_flow_config(flow_home: Path, tmp_path: Path) -> None:
    (flow_home / "config.toml").write_text('daemon_grace = "soon"\n')
    yml = write_dataflow(tmp_path, "nodes:\n  - id: a\n    path: a.py\n", {"a.py": "print(1)\n"})
    for args in (("run", str(yml)), ("config",)):
        done = flow(*args, home=flow_home)
        assert done.returncode == 2, done
        assert done.stderr == (
            f"error: {flow_home / 'config.toml'}: daemon_grace: expected a duration like 30s\n"
        )


def test_the_daemon_refuses_to_start_on_a_bad_setting(flow_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--home", str(flow_home)],
        env=flow_env(flow_home, {"FLOW_LOG_MAX_BYTES": "lots"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "flow daemon: error: FLOW_LOG_MAX_BYTES=lots (environment): expected a size like 16MiB\n"
    )


def test_start_timeout_from_config_toml_bounds_the_start_barrier(
    flow_home: Path, tmp_path: Path
) -> None:
    (flow_home / "config.toml").write_text('start_timeout = "1s"\n')
    late = "import time\ntime.sleep(5)\nfrom node_sdk import Node\nNode()\n"
    yml = write_dataflow(tmp_path, "nodes:\n  - id: late\n    path: late.py\n", {"late.py": late})
    done = flow("run", str(yml), home=flow_home)
    assert done.returncode == 1
    assert "nodes did not connect within 1s: late" in done.stdout + done.stderr


def test_the_daemon_hands_its_settings_to_keepers_and_nodes(
    flow_home: Path, tmp_path: Path
) -> None:
    (flow_home / "config.toml").write_text(
        'log_max_bytes = "4K"\nsend_timeout = "7s"\nlog_level = "warning"\n'
    )
    yml = write_dataflow(
        tmp_path,
        # the node's own variables do not change the daemon's settings
        "nodes:\n  - id: probe\n    path: probe.py\n"
        "    env: {FLOW_SEND_TIMEOUT: '99', FLOW_START_TIMEOUT: '98'}\n",
        {"probe.py": PROBE},
    )
    daemon_up(flow_home)
    try:
        done = flow("start", str(yml), "--attach", "--name", "probe", home=flow_home)
        assert done.returncode == 0, done.stdout + done.stderr
        logs = flow("logs", "probe", "probe", home=flow_home).stdout
        assert "timeouts 30.0 7.0" in logs
        # the log level reached the node through its environment (older lines rotated away)
        logs = "".join(p.read_text() for p in (flow_home / "runs").glob("*/logs/probe.log*"))
        assert "warning-line" in logs
        assert "info-line" not in logs
        run_dirs = list((flow_home / "runs").iterdir())
        assert len(run_dirs) == 1
        log_dir = run_dirs[0] / "logs"
        # the run keeper is a process of its own: it rotated at the daemon's 4 KiB
        assert (log_dir / "probe.log.1").exists()
        assert (log_dir / "probe.log").stat().st_size <= 4096
    finally:
        daemon_down(flow_home)
