"""`flow config`: the effective settings and where each came from; and the CLI's one read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.errors import BAD_INPUT, CliError
from daemon.model import settings

SOURCE_STYLES = {
    settings.DEFAULT: "dim",
    settings.CONFIG_FILE: "cyan",
    settings.ENVIRONMENT: "yellow",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="show the effective settings (defaults < config.toml < environment)",
        description="Show every setting's effective value and where it came from: the "
        "default, $FLOW_HOME/config.toml, or a FLOW_* environment variable.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per setting per line")
    p.set_defaults(func=run)


def load_settings(home: Path | None = None) -> settings.Settings:
    """Read and install this process's settings; a bad one is bad input (exit 2)."""
    from cli import client

    try:
        return settings.install(settings.load(client.home_path(home)))
    except settings.SettingsError as exc:
        raise CliError(str(exc), BAD_INPUT) from None


def run(args: argparse.Namespace) -> int:
    from cli import client

    home = client.home_path()
    effective = load_settings(home)
    rows = [
        {
            "key": key.name,
            "value": getattr(effective, key.name),
            "text": key.render(getattr(effective, key.name)),
            "source": effective.source(key.name),
            "env": key.env,
            "help": key.help,
        }
        for key in settings.KEYS
    ]
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
        return 0
    _print_table(rows, home / settings.CONFIG_FILE, effective.config_file is not None)
    return 0


def _print_table(rows: list[dict[str, Any]], config: Path, present: bool) -> None:
    from rich.text import Text

    from cli import render

    render.table(
        ["KEY", "VALUE", "SOURCE", "ENVIRONMENT"],
        [
            (
                [
                    row["key"],
                    row["text"],
                    Text(row["source"], style=SOURCE_STYLES.get(row["source"], "")),
                    row["env"],
                ],
                [],
            )
            for row in rows
        ],
    )
    render.err.print(
        f"config file: {config}{'' if present else ' (absent)'}", style="dim", markup=False
    )
