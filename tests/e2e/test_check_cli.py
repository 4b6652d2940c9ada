"""`flow check` as a user runs it (one process per command); the rules are tested in
process by tests/unit/test_check.py."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO, flow

BAD = REPO / "tests" / "data" / "bad"


def test_check_smoke(flow_home: Path) -> None:
    bad = flow("check", str(BAD / "timer_unit.yml"), home=flow_home)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.startswith(f"{BAD / 'timer_unit.yml'}:6: nodes[0].inputs.tick: ")
    assert "Traceback" not in bad.stderr
    good = flow("check", str(BAD / "ok.yml"), home=flow_home)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "ok: 2 nodes, 1 connection"


def test_a_machine_no_daemon_serves_is_refused_at_start(daemon: Path, tmp_path: Path) -> None:
    node = tmp_path / "n.py"
    node.write_text("print('hi')\n")
    yml = tmp_path / "far.yml"
    yml.write_text(f"nodes:\n  - id: far\n    path: {node}\n    deploy:\n      machine: mars\n")
    done = flow("start", str(yml), "--detach", home=daemon)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{yml}:5: nodes[0].deploy.machine" in done.stderr
    assert "mars" in done.stderr
