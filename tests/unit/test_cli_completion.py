"""`flow completion` refuses, naming the shells it can do, a shell the installed shtab lacks."""

from __future__ import annotations

import pytest
import shtab

from cli.main import main


def test_a_shell_shtab_lacks_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shtab, "SUPPORTED_SHELLS", ["bash", "zsh", "tcsh"])
    assert main(["completion", "fish"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: shtab {shtab.__version__} cannot complete fish: supported shells are "
        "bash, zsh, tcsh"
    ]
