"""Every command and sub-verb's help has a description and at least one example."""

from __future__ import annotations

from cli import docs
from cli.examples import EXAMPLES, HEADING
from cli.main import build_parser


def test_every_command_has_a_description_and_an_example() -> None:
    for command, parser in docs._commands(build_parser(), "flow"):
        assert parser.description, f"{command}: no description"
        assert (parser.epilog or "").startswith(HEADING), f"{command}: no example"
        assert f"{HEADING}\n  {command}" in parser.format_help(), f"{command}: no example"


def test_examples_name_their_own_command() -> None:
    for command, lines in EXAMPLES.items():
        assert lines, command
        for line in lines:
            assert line.startswith(f"flow {command}"), f"{command}: {line!r}"


def test_every_example_parses() -> None:
    import shlex

    parser = build_parser()
    for command, lines in EXAMPLES.items():
        if command.split()[0] not in {c.split()[1] for c, _ in docs._commands(parser, "flow")}:
            continue  # a command another branch adds: checked once it is there
        for line in lines:
            words = shlex.split(line.split(" > ")[0])[1:]  # without `flow` and a redirection
            try:
                parser.parse_args(words)
            except SystemExit:
                raise AssertionError(f"{command}: {line!r} does not parse") from None
