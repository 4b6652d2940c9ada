"""`flow doctor` as a user runs it: a healthy machine with and without a daemon, and broken
conditions (a corrupt state store, a socket folder others can write in) named with a fix."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from helpers import flow

from node_sdk import paths


def _checks(home: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    done = flow("doctor", "--json", home=home)
    assert "Traceback" not in done.stderr, done.stderr
    checks = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, {check["name"]: check for check in checks}


def test_doctor_with_the_daemon_up(daemon: Path) -> None:
    status, checks = _checks(daemon)
    assert status == 0, checks
    assert set(checks) == {
        "python", "flow", "settings", "daemon", "FLOW_HOME", "socket folder", "/dev/shm",
        "open files", "state store",
    }  # fmt: skip
    assert checks["daemon"]["status"] == "OK"
    assert checks["daemon"]["detail"].startswith("running (pid ")
    assert checks["state store"]["status"] == "OK"
    assert "integrity ok" in checks["state store"]["detail"]
    assert checks["socket folder"]["status"] == "OK"
    assert "MiB free of" in checks["/dev/shm"]["detail"]
    table = flow("doctor", home=daemon)
    assert table.returncode == 0
    assert any(line.startswith("OK    daemon") for line in table.stdout.splitlines()), table.stdout


def test_doctor_without_a_daemon_warns_and_names_the_fix(flow_home: Path) -> None:
    status, checks = _checks(flow_home)
    assert status == 0
    assert checks["daemon"]["status"] == "WARN"
    assert checks["daemon"]["detail"] == "not running"
    assert "flow up" in checks["daemon"]["fix"]


def test_doctor_fails_on_a_setting_flow_up_would_refuse(flow_home: Path) -> None:
    status, checks = _checks(flow_home)
    assert checks["settings"]["status"] == "OK"
    (flow_home / "config.toml").write_text('start_timeout = "forever"\n')
    status, checks = _checks(flow_home)
    assert status == 1
    assert checks["settings"]["status"] == "FAIL"
    assert "config.toml: start_timeout: expected a duration" in checks["settings"]["detail"]
    assert flow("up", home=flow_home).returncode == 2  # what the check foretold


def test_doctor_fails_on_a_corrupt_state_store(flow_home: Path) -> None:
    db = paths.state_db(flow_home)
    good = sqlite3.connect(db)
    good.execute("CREATE TABLE runs (id TEXT)")
    good.executemany("INSERT INTO runs VALUES (?)", [(str(i) * 200,) for i in range(200)])
    good.commit()
    good.close()
    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 512] = b"\xff" * 512  # the second page: the table's rows
    db.write_bytes(bytes(data))
    before = db.read_bytes()
    status, checks = _checks(flow_home)
    assert status == 1
    assert checks["state store"]["status"] == "FAIL"
    assert str(db) in checks["state store"]["detail"]
    assert "move" in checks["state store"]["fix"]
    assert db.read_bytes() == before  # read only: the evidence is left as it was
    text = flow("doctor", home=flow_home)
    assert text.returncode == 1
    assert "FAIL  state store" in text.stdout
    assert "fix: flow down, then move" in text.stdout


def test_doctor_fails_on_a_socket_folder_others_can_write(flow_home: Path) -> None:
    sockets = paths.socket_dir(flow_home)
    sockets.mkdir(mode=0o700)
    try:
        sockets.chmod(0o777)
        status, checks = _checks(flow_home)
        assert status == 1
        assert checks["socket folder"]["status"] == "FAIL"
        assert "mode 777" in checks["socket folder"]["detail"]
        assert checks["socket folder"]["fix"] == f"chmod 700 {sockets}"
        sockets.chmod(0o750)
        status, checks = _checks(flow_home)
        assert status == 0
        assert checks["socket folder"]["status"] == "WARN"
    finally:
        sockets.rmdir()
