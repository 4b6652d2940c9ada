"""`flow completion SHELL`: a shell completion script, generated from flow's own parser."""

from __future__ import annotations

import argparse

# the shells the script is offered for; shtab generates each (never written by hand)
SHELLS = ("bash", "zsh", "fish", "tcsh")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for SHELL, generated from flow's argument "
        "parser by shtab, so it always knows every command and flag of this version. "
        "Source it, or save it where your shell loads completions.",
    )
    parser.add_argument("shell", metavar="SHELL", choices=SHELLS, help="the shell to complete")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from cli.errors import BAD_INPUT, CliError
    from cli.main import build_parser
    from cli.render import out

    offered = [shell for shell in SHELLS if shell in shtab.SUPPORTED_SHELLS]
    if args.shell not in offered:
        raise CliError(
            f"shtab {shtab.__version__} cannot complete {args.shell}: "
            f"supported shells are {', '.join(offered)}",
            BAD_INPUT,
        )
    parser = build_parser()
    _complete_files(parser, shtab.FILE)
    script = shtab.complete(parser, shell=args.shell)
    out.file.write(script if script.endswith("\n") else script + "\n")
    return 0


def _complete_files(parser: argparse.ArgumentParser, files: object) -> None:
    """Every FILE argument (a dataflow, a node snippet) and --html OUT completes paths."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_files(sub, files)
        elif action.metavar in ("FILE", "OUT"):
            action.complete = files  # type: ignore[attr-defined]  # shtab reads it
