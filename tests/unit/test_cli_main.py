"""`flow`'s entry point with no daemon: version, lazy imports, the one-line error path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from daemon import __version__

REPO = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"flow {__version__}\n"


def test_version_imports_neither_trio_nor_rich_nor_zmq() -> None:
    code = (
        "import sys\n"
        "import cli.main\n"
        "try:\n"
        "    cli.main.main(['--version'])\n"
        "finally:\n"
        "    print(sorted(m for m in ('trio', 'rich', 'zmq') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.splitlines() == [f"flow {__version__}", "[]"]


def test_no_daemon_exits_3_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "list", "r"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot reach the flow daemon at ipc://")
    assert lines[0].endswith(": run flow up")


def test_subprocess_error_has_no_traceback(flow_home: Path) -> None:
    env = dict(os.environ, FLOW_HOME=str(flow_home))
    env.pop("FLOW_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "node", "list", "r"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: cannot reach the flow daemon")


def test_flow_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOW_DEBUG", "1")
    assert main(["node", "list", "r"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-verb"]) == 2
    assert main(["logs", "r", "--since", "soon"]) == 2
    assert main(["start", "x.yml", "--env", "NOEQUALS"]) == 2
    assert main(["start", "x.yml", "--attach", "--detach"]) == 2


def test_missing_or_huge_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["start", str(tmp_path / "absent.yml")]) == 2
    big = tmp_path / "big.yml"
    big.write_bytes(b"#" * ((1 << 20) + 1))
    assert main(["start", str(big)]) == 2
    err = capsys.readouterr().err
    assert "error: no such dataflow file" in err
    assert "larger than 1 MiB" in err


def test_unexpected_exception_is_one_red_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli.commands.status as status

    def boom(args: object) -> int:
        raise RuntimeError("kaput")

    monkeypatch.setattr(status, "run", boom)
    assert main(["status"]) == 1
    assert capsys.readouterr().err == "error: RuntimeError: kaput\n"


def test_keyboard_interrupt_is_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli.commands.status as status

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(status, "run", interrupted)
    assert main(["status"]) == 130
    assert capsys.readouterr().err == ""


def test_down_without_daemon_is_fine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["down"]) == 0
    assert capsys.readouterr().out == "flow daemon is not running\n"
