"""dora's main flags, as a dora user types them: `stop --name N --grace-duration D` and
`new --lang python` (README: the same main flags)."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import flow


def test_dora_stop_flags_stop_the_run_named(daemon: Path, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    graph = tmp_path / "sleep.yml"
    graph.write_text(f"nodes:\n  - id: sleeper\n    path: {script}\n")
    for name in ("t1", "t2"):
        started = flow("start", str(graph), "--detach", "--name", name, home=daemon)
        assert started.returncode == 0, started.stderr
    both = flow("stop", "t1", "--name", "t2", home=daemon)
    assert both.returncode == 2
    assert both.stderr.strip() == "error: give RUN or --name, not both"
    stopped = flow("stop", "--name", "t2", "--grace-duration", "2s", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert "run t2" in stopped.stdout
    assert "stopped" in stopped.stdout.splitlines()[0], stopped.stdout
    listed = flow("list", home=daemon).stdout
    assert "t1" in listed
    assert "t2" not in listed  # ended: only active runs are listed


def test_dora_new_lang_python_is_taken_and_others_named(flow_home: Path, tmp_path: Path) -> None:
    made = flow("new", "camera", "--kind", "node", "--lang", "python", home=flow_home,
                cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "camera.py").exists()
    other = flow("new", "cam2", "--lang", "rust", home=flow_home, cwd=tmp_path)
    assert other.returncode == 2
    assert "python" in other.stderr
    assert "Traceback" not in other.stderr
    assert not os.path.exists(tmp_path / "cam2")
