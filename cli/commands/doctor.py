"""`flow doctor`: what flow needs from this machine, each check OK / WARN / FAIL with a fix."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import attrs

from cli.commands import doctor_cluster

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# below this many free bytes in /dev/shm, large messages start to fail
SHM_LOW_BYTES = 64 << 20
# each node holds a few sockets and pipes, the daemon a few per node: 1024 is tight
NOFILE_LOW = 1024
NOFILE_ENOUGH = 4096


@attrs.frozen
class Check:
    """One check's verdict; `fix` says what to do when it is not OK."""

    name: str
    status: str
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check this machine and flow's state for problems",
        description="Check the Python and flow versions, the settings (config.toml and FLOW_* "
        "variables, as flow up reads them), whether the daemon answers, that the "
        "socket folder and FLOW_HOME are private, that /dev/shm is usable (and its size), the "
        "open-file limit and the state store's integrity (read only). Each check prints OK, "
        "WARN or FAIL with the fix. Exit status: 1 when a check fails, else 0. With "
        "--cluster (on a coordinator), probe the links between machines instead: each "
        "direction with an 8 B and a large message over the transport nodes use (tcp://, "
        "CURVE, the machines' keys); exit status 1 when a link fails, with one line each.",
    )
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per check (per link with --cluster)")  # fmt: skip
    doctor_cluster.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from cli import client

    if args.cluster is not None:
        return doctor_cluster.run(args)
    doctor_cluster.refuse_options(args)
    home = client.home_path()
    checks = [check(home) for check in CHECKS]
    if args.json:
        for result in checks:
            sys.stdout.write(json.dumps(attrs.asdict(result)) + "\n")
    else:
        _print(checks)
    return 1 if any(result.status == FAIL for result in checks) else 0


def _print(checks: list[Check]) -> None:
    from rich.text import Text

    from cli.render import out

    styles = {OK: "green", WARN: "yellow", FAIL: "bold red"}
    width = max(len(result.name) for result in checks)
    for result in checks:
        line = Text.assemble(
            (f"{result.status:<4}", styles[result.status]), f"  {result.name:<{width}}  ",
            result.detail,
        )  # fmt: skip
        out.print(line)
        if result.fix:
            out.print(Text(f"      {'':<{width}}  fix: {result.fix}", style="dim"))


def check_python(home: Path) -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", OK, f"{version} ({sys.executable})")


def check_flow(home: Path) -> Check:
    from daemon import __version__

    return Check("flow", OK, f"{__version__} (home {home})")


def check_daemon(home: Path) -> Check:
    from cli import client
    from cli.errors import CliError
    from daemon import __version__

    try:
        reply = client.ping(home=home)
    except CliError as exc:
        return Check("daemon", FAIL, exc.message, "see the socket folder check")
    if reply is None:
        return Check("daemon", WARN, "not running", "flow up (or use flow run, no daemon needed)")
    if reply.version != __version__:
        return Check(
            "daemon",
            WARN,
            f"running (pid {reply.pid}) version {reply.version}, this flow is {__version__}",
            "flow down; flow up (to run this version)",
        )
    return Check("daemon", OK, f"running (pid {reply.pid}, version {reply.version})")


def _private_folder(name: str, folder: Path, fix_other_user: str) -> Check:
    """A folder only this user may use: owned by us, no access for others, not a link."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return Check(name, OK, f"{folder} (not made yet)")
    except OSError as exc:
        return Check(name, FAIL, f"{folder}: {exc.strerror or exc}", fix_other_user)
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return Check(name, FAIL, f"{folder} is not a folder (a link or a file)", fix_other_user)
    if info.st_uid != os.getuid():
        return Check(name, FAIL, f"{folder} belongs to uid {info.st_uid}", fix_other_user)
    if mode & 0o022:
        return Check(
            name, FAIL, f"{folder} is writable by other users (mode {mode:o})",
            f"chmod 700 {folder}",
        )  # fmt: skip
    if mode & 0o077:
        return Check(
            name, WARN, f"{folder} is readable by other users (mode {mode:o})",
            f"chmod 700 {folder} (flow tightens it at the next flow up)",
        )  # fmt: skip
    return Check(name, OK, f"{folder} (mode {mode:o}, yours)")


def check_home(home: Path) -> Check:
    from node_sdk.private import FIXES

    return _private_folder("FLOW_HOME", home, FIXES["FLOW_HOME"])


def check_sockets(home: Path) -> Check:
    from node_sdk import paths
    from node_sdk.private import FIXES

    return _private_folder("socket folder", paths.socket_dir(home), FIXES["socket folder"])


def check_shm(home: Path) -> Check:
    import tempfile

    shm = Path("/dev/shm")
    fix = "mount a tmpfs on /dev/shm (docker: --shm-size=512m)"
    try:
        with tempfile.NamedTemporaryFile(dir=shm, prefix="flow-doctor-"):
            pass
        info = os.statvfs(shm)
    except OSError as exc:
        return Check("/dev/shm", FAIL, f"not usable: {exc.strerror or exc}", fix)
    free, size = info.f_bavail * info.f_frsize, info.f_blocks * info.f_frsize
    detail = f"{_mib(free)} free of {_mib(size)}"
    if free < SHM_LOW_BYTES:
        return Check("/dev/shm", WARN, detail + ": large messages may fail", fix)
    return Check("/dev/shm", OK, detail)


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.0f} MiB"


def check_open_files(home: Path) -> Check:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    if soft != resource.RLIM_INFINITY and soft < NOFILE_LOW:
        top = NOFILE_ENOUGH if hard == resource.RLIM_INFINITY else min(hard, NOFILE_ENOUGH)
        return Check(
            "open files", WARN, f"limit {shown}: a large dataflow may run out",
            f"ulimit -n {top} before flow up",
        )  # fmt: skip
    return Check("open files", OK, f"limit {shown}")


def check_store(home: Path) -> Check:
    import sqlite3

    from node_sdk import paths

    db_path = paths.state_db(home)
    fix = f"flow down, then move {db_path} aside (flow up makes a new one)"
    if not db_path.exists():
        return Check("state store", OK, f"{db_path} (not made yet)")
    try:
        # read only: never the writer of a store the daemon may be using
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = [str(row[0]) for row in db.execute("PRAGMA integrity_check(5)")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("state store", FAIL, f"{db_path}: {exc}", fix)
    if rows != ["ok"]:
        return Check("state store", FAIL, f"{db_path}: {'; '.join(rows)}", fix)
    return Check("state store", OK, f"{db_path} (integrity ok)")


def check_settings(home: Path) -> Check:
    """`config.toml` and the FLOW_* variables as `flow up` and `flow run` read them."""
    from daemon.model import settings

    try:
        loaded = settings.load(home)
    except settings.SettingsError as exc:
        fix = "correct it: every key and its kind in docs/operations.md, Settings"
        return Check("settings", FAIL, str(exc), fix)
    where = loaded.config_file or f"defaults (no {home / settings.CONFIG_FILE})"
    return Check("settings", OK, f"from {where}")


CHECKS: tuple[Callable[[Path], Check], ...] = (
    check_python,
    check_flow,
    check_settings,
    check_daemon,
    check_home,
    check_sockets,
    check_shm,
    check_open_files,
    check_store,
)
