"""The optional RUN argument every run command shares: omitted, it is the one active run."""

from __future__ import annotations

import argparse
from typing import Any

RUN_HELP = "run id, id prefix or name (default: the only active run)"


def foreground(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs a `flow run` process supervises (origin `foreground:PID:START`), which the
    daemon lists but does not run."""
    return [r for r in runs if str(r.get("origin") or "").startswith("foreground:")]


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    """An optional positional RUN, resolved later by `target_run`."""
    parser.add_argument("run", nargs="?", default=None, metavar="RUN", help=RUN_HELP)


def target_run(ref: str | None, *, all_hint: bool = False) -> str:
    """The run a command acts on: `ref` as given (the daemon resolves ids, prefixes and
    names), or the one active run when it is None; none or several active is one line."""
    if ref is not None:
        return ref
    return str(only_active_run(all_hint=all_hint)["id"])


def only_active_run(*, all_hint: bool = False) -> dict[str, Any]:
    """The RunInfo of the one active run; none or several is a one-line error."""
    from cli import client, render
    from cli.errors import BAD_INPUT, CliError
    from daemon.model.requests_runs import List

    runs = client.call(List()).runs
    if not runs:
        raise CliError("no active run: name one (flow list --all shows ended runs)")
    if len(runs) > 1:
        shorts = render.short_ids([str(r["id"]) for r in runs])
        names = ", ".join(render.run_label(r, shorts[str(r["id"])]) for r in runs)
        extra = ", or pass --all" if all_hint else ""
        raise CliError(f"several runs are active ({names}): name one{extra}", BAD_INPUT)
    return dict(runs[0])
