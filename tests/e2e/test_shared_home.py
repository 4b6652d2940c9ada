"""A FLOW_HOME pointed at a folder other users read and that holds what flow did not make
(FLOW_HOME=$HOME, =., =/srv) is refused in one line, untouched; it had its whole tree made
private, every folder 0700 and every file 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from helpers import flow


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_flow_run_and_up_refuse_a_shared_folder_as_home(tmp_path: Path) -> None:
    shared = tmp_path / "srv"
    (shared / "www").mkdir(parents=True)
    page = shared / "www" / "index.html"
    page.write_text("hi")
    shared.chmod(0o755)
    (shared / "www").chmod(0o755)
    page.chmod(0o644)
    yml = tmp_path / "one.yml"
    yml.write_text("nodes:\n  - id: a\n    path: sh\n    args: -c 'echo hi'\n")
    for command in (["run", str(yml)], ["up"]):
        done = flow(*command, home=shared)
        assert done.returncode != 0, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"FLOW_HOME {shared} is not a flow home: it holds www and other users" in lines[0]
        assert "Traceback" not in done.stderr
    assert [_mode(p) for p in (shared, shared / "www", page)] == [0o755, 0o755, 0o644]
    assert sorted(p.name for p in shared.iterdir()) == ["www"]  # nothing of flow's made


def test_a_link_planted_where_flow_writes_is_said_to_be_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    for name in ("daemon.log", "daemon.lock"):
        link = home / name
        link.symlink_to(target)
        done = flow("up", home=home)
        assert done.returncode != 0, done.stdout + done.stderr
        said = f"{link} is a symbolic link, not a file flow made: remove it"
        assert said in done.stderr, done.stderr  # not `Too many levels of symbolic links`
        assert "OSError" not in done.stderr
        assert not target.exists()  # nothing written through it
        link.unlink()
    flow("down", "--force", home=home)
