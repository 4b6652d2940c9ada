"""The CLI's surface as a shell user meets it: completion scripts, unknown commands, help."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BOUND_S, flow


def _complete(script: Path, words: list[str]) -> set[str]:
    """What bash's completion function offers for `words` (the last one being typed)."""
    line = " ".join(words)
    driver = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        f'_shtab_flow flow {words[-1]!r} {words[-2]!r}\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", driver],
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {word for word in done.stdout.split() if word}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_and_verbs(flow_home: Path, tmp_path: Path) -> None:
    done = flow("completion", "bash", home=flow_home)
    assert done.returncode == 0, done.stderr
    script = tmp_path / "flow.bash"
    script.write_text(done.stdout)
    assert _complete(script, ["flow", "st"]) == {"start", "status", "stop"}
    assert _complete(script, ["flow", "sta"]) == {"start", "status"}
    assert {"add", "remove", "connect"} <= _complete(script, ["flow", "node", ""])
    assert "--older-than" in _complete(script, ["flow", "prune", "--o"])
    (tmp_path / "dataflow.yml").touch()
    assert _complete(script, ["flow", "check", f"{tmp_path}/data"]) == {
        f"{tmp_path}/dataflow.yml"
    }


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_a_generated_script(flow_home: Path, shell: str) -> None:
    done = flow("completion", shell, home=flow_home)
    assert done.returncode == 0, done.stderr
    assert "doctor" in done.stdout
    assert "prune" in done.stdout


def test_an_unknown_shell_is_refused_naming_the_shells(flow_home: Path) -> None:
    done = flow("completion", "powershell", home=flow_home)
    assert done.returncode == 2
    assert "bash" in done.stderr
    assert "zsh" in done.stderr


def test_an_unknown_command_gets_did_you_mean(flow_home: Path) -> None:
    done = flow("lsit", "--all", home=flow_home)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unknown command 'lsit'; did you mean 'list'? (flow --help lists the commands)"
    ]
    assert done.stdout == ""
    nothing_close = flow("xyzzy", home=flow_home)
    assert nothing_close.returncode == 2
    assert "did you mean" not in nothing_close.stderr
    assert len(nothing_close.stderr.strip().splitlines()) == 1


def test_a_dora_verb_and_a_mistyped_option_get_one_line_saying_what_is_meant(
    flow_home: Path,
) -> None:
    for argv, line in [
        (("ps",), "error: unknown command 'ps': dora's `ps` is `flow list` here"),
        (("destroy",), "error: unknown command 'destroy': dora's `destroy` is `flow down` here"),
        (("daemon",), "error: unknown command 'daemon': dora's `daemon` is `flow up` "
         "(`--machine NAME --join TOKEN` on a cluster's machine) here"),
        (("hub",), "error: unknown command 'hub': dora's `hub` has no equivalent in flow"),
        (("start", "--atach", "x.yml"), "error: flow start: unrecognized option '--atach'; "
         "did you mean '--attach' or '--detach'? (flow start --help)"),
        (("topic", "echo", "r", "n/o", "--cont", "3"), "error: flow topic echo: unrecognized "
         "option '--cont'; did you mean '--count'? (flow topic echo --help)"),
        (("list", "extra"), "error: flow list: unrecognized argument 'extra' (flow list --help)"),
    ]:  # fmt: skip
        done = flow(*argv, home=flow_home)
        assert (done.returncode, done.stdout) == (2, ""), argv
        assert done.stderr.strip().splitlines() == [line]


def test_help_shows_examples(flow_home: Path) -> None:
    done = flow("topic", "echo", "--help", home=flow_home)
    assert done.returncode == 0, done.stderr
    assert "examples:\n  flow topic echo " in done.stdout


def test_status_without_a_daemon_says_not_running(flow_home: Path) -> None:
    done = flow("status", home=flow_home)
    assert done.returncode == 3
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"flow daemon not running (home {flow_home}); start it with flow up"
    ]


def test_an_empty_list_points_at_the_ended_runs(daemon: Path, tmp_path: Path) -> None:
    listed = flow("list", home=daemon)
    assert listed.returncode == 0
    assert listed.stderr.strip() == "no runs running (flow list --all shows ended ones)"
    assert flow("list", "--all", home=daemon).stderr.strip() == "no runs"


def test_a_mistyped_node_gets_the_closest_name(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "one.yml"
    yml.write_text("nodes:\n  - id: talker\n    path: sleep\n    args: '30'\n")
    assert flow("start", str(yml), "--detach", "--name", "one", home=daemon).returncode == 0
    for command in (["logs", "one", "talkr"], ["node", "info", "one", "talkr"]):
        done = flow(*command, home=daemon)
        assert done.returncode == 1, done.stderr
        assert "no node 'talkr'" in done.stderr
        assert "(did you mean 'talker'?)" in done.stderr, (command, done.stderr)
    assert flow("stop", "one", "--grace", "0s", home=daemon).returncode == 0
