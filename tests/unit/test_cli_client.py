"""The control client and the daemon-facing commands against a canned control ROUTER."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeControlDaemon, fail, ok

from cli import client
from cli.errors import CliError, DaemonError, DaemonUnreachable
from cli.main import main
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.logformat import LogRecord
from node_sdk import paths


def node(nid: str, status: str = "running", **kw: Any) -> dict[str, Any]:
    info = {
        "id": nid,
        "status": status,
        "pid": 10,
        "generation": 1,
        "restarts": 0,
        "exit_code": None,
        "signal": None,
        "stderr_tail": [],
    }
    return info | kw


def run_info(rid: str, name: str | None, status: str = "running", **kw: Any) -> dict[str, Any]:
    info = {
        "id": rid,
        "name": name,
        "status": status,
        "path": "/x/dataflow.yml",
        "created": 0.0,
        "ended": None,
        "degraded": None,
        "error": None,
        "nodes": [node("src"), node("sink")],
    }
    return info | kw


# --- the client ---------------------------------------------------------------------------


def test_request_returns_body(fake_control: FakeControlDaemon) -> None:
    fake_control.on("ping", ok({"pid": 42, "version": "0.1.0", "home": "/h"}))
    assert client.call(rq.Ping()) == rp.PingReply(pid=42, version="0.1.0", home="/h")
    (req,) = fake_control.requests
    assert req["v"] == 1
    assert req["type"] == "ping"
    assert req["body"] == {}
    assert len(req["id"]) >= 8


def test_reply_with_another_id_is_discarded(fake_control: FakeControlDaemon) -> None:
    fake_control.stray_first = True
    fake_control.on("ping", ok({"pid": 7, "version": "0.1.0", "home": "/h"}))
    assert client.call(rq.Ping()).pid == 7


def test_error_reply_maps_to_daemon_error(fake_control: FakeControlDaemon) -> None:
    fake_control.on("stop", fail("UnknownRun", "no run with ID or name 'x'"))
    with pytest.raises(DaemonError) as info:
        client.call(rq.Stop(run="x"))
    assert info.value.kind == "UnknownRun"
    assert info.value.status == 1
    assert info.value.message == "no run with ID or name 'x'"


@pytest.mark.parametrize("kind", ["BadRequest", "DataflowInvalid"])
def test_bad_input_kinds_exit_2(fake_control: FakeControlDaemon, kind: str) -> None:
    fake_control.on("start", fail(kind, "a.yml:3: nodes[0].path: missing\na.yml:9: nodes[1]: bad"))
    with pytest.raises(DaemonError) as info:
        client.call(rq.Start(path="/a.yml", text=rq.YamlText("")))
    assert info.value.status == 2


def test_silence_is_unreachable(fake_control: FakeControlDaemon) -> None:
    fake_control.on("ping", None)
    with pytest.raises(DaemonUnreachable, match="run flow up") as info:
        client.call(rq.Ping(), timeout=0.2)
    assert info.value.status == 3


def test_missing_socket_is_unreachable(flow_home: Path) -> None:
    with pytest.raises(DaemonUnreachable) as info:
        client.call(rq.Ping())
    assert info.value.endpoint == paths.control_endpoint(flow_home)


@pytest.mark.parametrize(
    "reply",
    [{"v": 1, "ok": "maybe"}, ok({"pid": "7", "version": "0.1.0", "home": "/h"}), ok({})],
)
def test_malformed_reply_is_an_error(
    fake_control: FakeControlDaemon, reply: dict[str, Any]
) -> None:
    fake_control.on("ping", reply)
    with pytest.raises(CliError, match="malformed reply"):
        client.call(rq.Ping())


# --- commands -----------------------------------------------------------------------------


def test_invalid_dataflow_prints_every_problem(
    fake_control: FakeControlDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yml = tmp_path / "d.yml"
    yml.write_text("nodes: []\n")
    fake_control.on(
        "start", fail("DataflowInvalid", "d.yml:1: nodes: empty\nd.yml:2: x: unknown key")
    )
    assert main(["start", str(yml), "--detach"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: the dataflow is invalid (2 problems)",
        "d.yml:1: nodes: empty",
        "d.yml:2: x: unknown key",
    ]


def test_start_detached_sends_the_file(
    fake_control: FakeControlDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yml = tmp_path / "d.yml"
    yml.write_text("nodes: []\n")
    fake_control.on("start", ok({"run": run_info("0190abcd-1234", "demo", "starting")}))
    assert main(["start", str(yml), "--name", "demo", "--env", "A=1", "--env", "B=x=y"]) == 0
    assert capsys.readouterr().out == "0190abcd-1234 demo\n"  # stdin is not a TTY: detached
    body = fake_control.requests[-1]["body"]
    assert body == {
        "path": str(yml),
        "text": "nodes: []\n",
        "name": "demo",
        "env": {"A": "1", "B": "x=y"},
        "record": None,
    }


def test_list_table_is_plain_and_greppable(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = run_info(
        "0190aaaa-0000",
        "demo",
        "failed",
        degraded="log writing: disk full",
        nodes=[
            node("src", "succeeded"),
            node("sink", "failed", exit_code=3, stderr_tail=["boom", "ValueError: bad"]),
        ],
    )
    fake_control.on("list", ok({"runs": [run_info("0190bbbb-0000", None), failed]}))
    assert main(["list", "--all"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "STATUS", "NODES", "AGE"]
    assert lines[1].split()[:5] == ["-", "0190bbbb", "running", "2", "running"]
    assert lines[2].split()[:3] == ["demo", "0190aaaa", "failed"]
    assert "1 succeeded, 1 failed" in lines[2]
    assert "node sink exited 3: ValueError: bad" in out
    assert "degraded: log writing: disk full" in out
    assert not any(ch in out for ch in "│─┃━")
    assert fake_control.requests[-1]["body"] == {"all": True}


def test_list_json_lines(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [run_info("a", "one"), run_info("b", None)]
    fake_control.on("list", ok({"runs": runs}))
    assert main(["list", "--json"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == runs


def test_stop_without_run_and_several_active(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_control.on(
        "list", ok({"runs": [run_info("0190aaaa", "one"), run_info("0190bbbb", "two")]})
    )
    assert main(["stop"]) == 2
    err = capsys.readouterr().err
    assert "several runs are active (one (0190aaaa), two (0190bbbb))" in err


def test_stop_without_run_and_none_active(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_control.on("list", ok({"runs": []}))
    assert main(["stop"]) == 1
    assert "no active run" in capsys.readouterr().err


def test_stop_the_only_run_waits_for_its_end(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_control.on("list", ok({"runs": [run_info("0190aaaa", "one")]}))
    fake_control.on("stop", ok({"run": run_info("0190aaaa", "one", "running")}))
    fake_control.on(
        "wait", ok({"run": run_info("0190aaaa", "one", "stopped", ended=1.0), "done": True})
    )
    assert main(["stop", "--grace", "2s"]) == 0
    # the run, then one line per node (the fake's nodes never changed from `running`)
    assert capsys.readouterr().out.splitlines() == [
        "run one (0190aaaa) stopped",
        "  src   still running",
        "  sink  still running",
    ]
    stop = next(r for r in fake_control.requests if r["type"] == "stop")
    assert stop["body"] == {"run": "0190aaaa", "grace": 2.0, "force": False}


def test_status_shows_degraded_as_warnings(
    fake_control: FakeControlDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_control.on(
        "status",
        ok(
            {
                "pid": 5,
                "version": "0.1.0",
                "home": "/h",
                "uptime_s": 3700,
                "runs_active": 2,
                "degraded": ["log writing: disk full"],
            }
        ),
    )
    assert main(["status"]) == 0
    captured = capsys.readouterr()
    assert "pid 5" in captured.out
    assert "1h" in captured.out
    assert "active runs: 2" in captured.out
    assert captured.err == "warning: degraded: log writing: disk full\n"


def test_up_when_already_running(
    fake_control: FakeControlDaemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cli.commands.up.daemon_process_alive", lambda home: True)
    fake_control.on("ping", ok({"pid": 99, "version": "0.1.0", "home": "/h"}))
    assert main(["up"]) == 0
    assert capsys.readouterr().out == "flow daemon already running (pid 99)\n"


def write_log(path: Path, *lines: tuple[float, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for t, msg in lines:
            f.write(LogRecord(time=t, stream="stdout", message=msg).to_json() + "\n")


def test_logs_without_run_takes_the_only_active_run_and_a_lone_node_name(
    fake_control: FakeControlDaemon, tmp_path: Path
) -> None:
    asked: list[dict[str, Any]] = []

    def logs(body: dict[str, Any]) -> dict[str, Any]:
        asked.append(body)
        return ok({"run": run_info("0190aaaa", "one", "succeeded", ended=9.0), "files": {}})

    fake_control.on("logs", logs)
    fake_control.on("list", ok({"runs": [run_info("0190aaaa", "one")]}))
    assert main(["logs"]) == 0
    assert main(["logs", "sink"]) == 0  # no run is called sink: the only run's node
    assert main(["logs", "one"]) == 0  # the run's own name stays the run
    assert [(b["run"], b["node"]) for b in asked] == [
        ("0190aaaa", None), ("0190aaaa", "sink"), ("one", None),
    ]  # fmt: skip
    fake_control.on("list", ok({"runs": []}))
    assert main(["logs"]) == 1  # no active run: one line, nothing asked


def test_logs_prefix_tail_grep_and_rotated_files(
    fake_control: FakeControlDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write_log(tmp_path / "a.log.1", (1, "a old"))
    write_log(a, (3, "a new"), (5, "a last"))
    write_log(b, (2, "b first"), (4, "b second"))
    info = run_info("0190aaaa", "one", "succeeded", ended=9.0)
    fake_control.on("logs", ok({"run": info, "files": {"a": str(a), "b": str(b)}}))
    fake_control.on("list", ok({"runs": []}))
    assert main(["logs", "one"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in out] == ["a", "b", "a", "b", "a"]
    assert [line.split(" ", 3)[-1] for line in out] == [
        "a old",
        "b first",
        "a new",
        "b second",
        "a last",
    ]
    assert main(["logs", "one", "--tail", "2", "--grep", "a"]) == 0
    assert [line.rsplit(" ", 2)[-2:] for line in capsys.readouterr().out.splitlines()] == [
        ["a", "new"],
        ["a", "last"],
    ]


def test_logs_follow_until_the_run_ends(
    fake_control: FakeControlDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a.log"
    write_log(a, (1, "first"))
    fake_control.on("logs", ok({"run": run_info("0190aaaa", "one"), "files": {"a": str(a)}}))
    waits = 0

    def wait(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal waits
        waits += 1
        if waits == 2:
            write_log(a, (2, "second"))
        done = waits >= 3
        if not done:
            return ok({"run": run_info("0190aaaa", "one"), "done": False})
        ended = [node(n, "succeeded", pid=None, exit_code=0) for n in ("src", "sink")]
        return ok({"run": run_info("0190aaaa", "one", "succeeded", nodes=ended), "done": True})

    fake_control.on("wait", wait)
    assert main(["logs", "one", "a", "-f"]) == 0
    out = capsys.readouterr().out.splitlines()
    # one format: `node | time text` even for one node; then the run's result
    assert [line.split(" ", 3)[-1] for line in out[:2]] == ["first", "second"]
    assert [line.split(" | ")[0] for line in out[:2]] == ["a", "a"]
    assert out[2:] == ["run one (0190aaaa) succeeded", "  src   exited 0", "  sink  exited 0"]


def test_start_attached_streams_and_reports_failure(
    fake_control: FakeControlDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yml = tmp_path / "d.yml"
    yml.write_text("nodes: []\n")
    logs = tmp_path / "logs"
    write_log(logs / "src.log", (1, "hello"))
    started = run_info("0190aaaa", "demo", "starting")
    ended = run_info(
        "0190aaaa",
        "demo",
        "failed",
        ended=2.0,
        nodes=[
            node("src", "succeeded", exit_code=0),
            node("sink", "failed", exit_code=3, stderr_tail=["Traceback", "ValueError: bad"]),
        ],
    )
    fake_control.on("start", ok({"run": started}))
    fake_control.on("list", ok({"runs": [ended]}))  # the start barrier is over
    fake_control.on(
        "logs",
        ok(
            {
                "run": started,
                "files": {"src": str(logs / "src.log"), "sink": str(logs / "sink.log")},
            }
        ),
    )
    fake_control.on("wait", ok({"run": ended, "done": True}))
    assert main(["start", str(yml), "--attach"]) == 1
    captured = capsys.readouterr()
    assert "src  | " in captured.out
    assert captured.out.splitlines()[0].endswith(" hello")
    assert "run demo (0190aaaa) failed" in captured.out
    assert "  sink  exited 3" in captured.out  # one line per node: how it ended
    assert "sink | ValueError: bad" in captured.err
