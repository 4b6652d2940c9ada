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
    script = shtab.complete(build_parser(), shell=args.shell)
    out.file.write(script if script.endswith("\n") else script + "\n")
    return 0
