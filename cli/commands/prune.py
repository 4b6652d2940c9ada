"""`flow prune`: delete ended runs (records, logs, dataflow copies), never an active one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.durations import duration_arg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "prune",
        help="delete ended runs and their logs",
        description="Delete ended runs (succeeded, stopped, failed) from the state store, "
        "with their log folders and dataflow copies. Active runs, and runs interrupted by a "
        "daemon crash that still await recovery, are never touched. Goes through the daemon "
        "when it runs; works on the store directly when it does not.",
    )
    parser.add_argument(
        "--older-than",
        metavar="D",
        type=duration_arg,
        default=0.0,
        help="only runs that ended more than D ago (e.g. 2d, 12h, 30m; default: every ended run)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.errors import DaemonUnreachable
    from daemon.model.requests_runs import Prune

    try:
        gone = client.call(Prune(older_than=args.older_than, dry_run=args.dry_run)).runs
    except DaemonUnreachable:
        gone = _prune_offline(client.home_path(), args.older_than, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    shorts = render.short_ids([str(info["id"]) for info in gone])
    for info in gone:
        render.info(f"{verb} {render.run_label(info, shorts[str(info['id'])])} ({info['status']})")
    n = len(gone)
    render.info(f"{verb} {n} run{'' if n == 1 else 's'}")
    return 0


def _prune_offline(home: Path, older_than: float, dry_run: bool) -> list[dict[str, Any]]:
    """No daemon: prune the store directly, holding the daemon's home lock meanwhile so
    that no daemon can start and open the store halfway through."""
    import os
    import time

    from cli import render
    from cli.errors import CliError
    from daemon.home_lock import HomeLocked, lock_home
    from daemon.model.errors import FlowError
    from daemon.store import Store, remove_run_folders
    from node_sdk import paths

    if not paths.state_db(home).exists():
        return []
    try:
        fd = lock_home(home)
    except OSError as exc:
        lock = paths.daemon_lock_file(home)
        raise CliError(f"cannot open {lock}: {exc.strerror or exc}") from None
    except HomeLocked:
        raise CliError(
            f"a flow daemon is starting or stopping for {home}: run flow prune again"
        ) from None
    try:
        try:
            store = Store.open(paths.state_db(home))
        except FlowError as exc:
            raise CliError(str(exc)) from None
        try:
            gone = store.prune(time.time() - older_than, (), dry_run=dry_run)
        finally:
            store.close()
        if not dry_run:
            for problem in remove_run_folders(home, [str(info["id"]) for info in gone]):
                render.warning(problem)
        return gone
    finally:
        os.close(fd)
