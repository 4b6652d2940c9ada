"""What a mistyped command or option most likely meant: one line, with the closest names
and dora's verbs that flow spells otherwise (`dora ps` is `flow list`)."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence
from typing import Final

# dora's verbs with another name here, and those flow has no equivalent of (None)
# (docs/coming-from-dora.md)
DORA_VERBS: Final[dict[str, str | None]] = {
    "ps": "`flow list`",
    "destroy": "`flow down`",
    "inspect": "`flow top`",
    "validate": "`flow check`",
    "clean": "`flow prune`",
    "system": "`flow status`",
    "daemon": "`flow up` (`--machine NAME --join TOKEN` on a cluster's machine)",
    "coordinator": "`flow up --machine NAME --listen tcp://ADDR:PORT`",
    "expand": "`flow check` (it expands modules and checks the result)",
    "trace": None,
    "hub": None,
    "self": None,
    "runtime": None,
}


def _guesses(word: str, names: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """Up to three names `word` most likely meant: those it begins, then the close ones."""
    names = list(names)
    starting = [name for name in names if word and name.startswith(word)]
    close = difflib.get_close_matches(word, names, n=3, cutoff=cutoff)
    return list(dict.fromkeys([*starting, *close]))[:3]


def unknown_command(command: str, commands: Sequence[str]) -> str:
    """One line: the word is no command, and the commands it most likely meant."""
    message = f"unknown command {command!r}"
    if command in DORA_VERBS:
        flows = DORA_VERBS[command]
        if flows is None:
            return f"{message}: dora's `{command}` has no equivalent in flow"
        return f"{message}: dora's `{command}` is {flows} here"
    guesses = _guesses(command, commands)
    if guesses:
        message += f"; did you mean {' or '.join(repr(g) for g in guesses)}?"
    return message + " (flow --help lists the commands)"


def unrecognized(
    parser: argparse.ArgumentParser, words: Sequence[str], extras: Sequence[str]
) -> str:
    """One line for the first word argparse could not place (what follows it may be its
    value): the command it was given to, that command's closest options, its help."""
    command = _command_parser(parser, words)
    first = extras[0]
    what = "option" if first.startswith("-") else "argument"
    message = f"{command.prog}: unrecognized {what} {first!r}"
    if first.startswith("-"):
        # `--` options only: a one-letter one is close to every short word
        options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        guesses = _guesses(first.partition("=")[0], options, cutoff=0.75)
        if guesses:
            message += f"; did you mean {' or '.join(repr(g) for g in guesses)}?"
    return f"{message} ({command.prog} --help)"


def _command_parser(
    parser: argparse.ArgumentParser, words: Sequence[str]
) -> argparse.ArgumentParser:
    """The innermost (sub)command parser the words name: `flow node add` for `node add`."""
    current = parser
    for word in words:
        if word.startswith("-"):
            continue
        choices = next((a.choices for a in current._actions
                        if isinstance(a, argparse._SubParsersAction)), None)  # fmt: skip
        if not choices or word not in choices:
            continue  # a positional argument of the current command
        current = choices[word]
    return current
