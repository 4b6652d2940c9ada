"""The generated docs are fresh: every command, flag and request type is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli import docs
from cli.main import COMMANDS, build_parser
from daemon.model import protocol
from daemon.model.protocol import encode_request
from daemon.model.requests import REQUESTS, Ping


@pytest.mark.parametrize("name", sorted(docs.GENERATED))
def test_generated_docs_are_fresh(name: str) -> None:
    protocol.decode_request(encode_request(Ping())[1])  # the converter has resolved types
    text = (docs.DOCS / name).read_text(encoding="utf-8")
    assert docs.render(text, docs.GENERATED[name](), name) == text, (
        f"docs/{name} is stale: run python -m cli.docs"
    )


def test_every_command_and_flag_is_documented_and_described() -> None:
    reference = (docs.DOCS / "cli-reference.md").read_text(encoding="utf-8")
    commands = dict(docs._commands(build_parser(), "flow"))
    assert {c.split()[1] for c in commands} == set(COMMANDS)
    for command, parser in commands.items():
        assert parser.description, f"{command} has no description"
        assert f"### `{command}`" in reference
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"{command} {action.option_strings or action.dest}: no help"
            for flag in action.option_strings:
                assert flag in reference, f"{command} {flag} is not documented"


def test_every_request_type_is_documented() -> None:
    protocol = (docs.DOCS / "protocol.md").read_text(encoding="utf-8")
    for name, cls in REQUESTS.items():
        assert (f"| `{name}` |" in protocol) != cls.HOOK, name


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in docs.GENERATED:
        (folder / name).write_text(f"# {name}\n{docs.BEGIN}\nold\n{docs.END}\ntail\n")
    monkeypatch.setattr(docs, "DOCS", folder)
    assert docs.main(["--check"]) == 1
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0
    assert (folder / "protocol.md").read_text().endswith(f"{docs.END}\ntail\n")
