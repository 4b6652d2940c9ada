"""Private folders (SPEC 10): made 0700, verified without following links, another user's refused.

The socket folder's name is predictable (`/tmp/flow-<uid>-<hash>`), so another local user
may create it first, or put a symlink there. Whoever owns it could answer for the daemon
(and receive `flow start`'s YAML and `--env` secrets), and a symlink would turn our
clean-ups on someone else's files. Daemon, CLI and SDK all check it through here, opening
the folder with `O_NOFOLLOW` and judging the open descriptor, so nothing can be swapped
between the check and the use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

__all__ = ["NotPrivate", "check_private_dir", "ensure_private_dir", "prepare_home"]

PRIVATE_DIR: Final = 0o700
FIXES: Final = {
    "FLOW_HOME": "set FLOW_HOME to a folder of your own",
    "socket folder": "remove it (flow did not make it), or set XDG_RUNTIME_DIR to a private folder",
}


def _fix(what: str) -> str:
    return FIXES.get(what, FIXES["socket folder"])


class NotPrivate(Exception):
    """A folder flow must own is a symlink, not a folder, or another user's; one line."""


def _foreign(folder: Path, what: str, uid: int) -> str:
    return f"{what} {folder} belongs to another user (uid {uid}): {_fix(what)}"


def _describe(folder: Path, what: str, exc: OSError) -> str:
    """The one line for a folder that cannot be opened as a folder without following links."""
    try:
        info = os.lstat(folder)
    except OSError:
        return f"cannot open {what} {folder}: {exc.strerror or exc}"
    if stat.S_ISLNK(info.st_mode):
        return f"{what} {folder} is a symbolic link, not a folder flow made: {_fix(what)}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{what} {folder} is not a folder: {_fix(what)}"
    return f"cannot open {what} {folder}: {exc.strerror or exc}"


@contextlib.contextmanager
def _open_dir(folder: Path, what: str) -> Iterator[os.stat_result]:
    """The folder's own status, opened with O_NOFOLLOW; NotPrivate if it is another user's."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotPrivate(_describe(folder, what, exc)) from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise NotPrivate(_foreign(folder, what, info.st_uid))
        yield info
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
            os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)


def ensure_private_dir(folder: Path, what: str = "socket folder") -> bool:
    """Create `folder` 0700, or take an existing one that is ours and tighten it.

    Never follows a symlink and never takes a folder another user made (NotPrivate, one
    line naming the folder and the fix). True when an existing folder was looser than 0700.
    """
    try:
        os.mkdir(folder, PRIVATE_DIR)
    except FileExistsError:
        pass
    except OSError as exc:
        raise NotPrivate(f"cannot create {what} {folder}: {exc.strerror or exc}") from None
    with _open_dir(folder, what) as info:
        return stat.S_IMODE(info.st_mode) & 0o077 != 0


def check_private_dir(folder: Path, what: str = "socket folder") -> None:
    """Refuse (NotPrivate) an existing `folder` that is not ours alone; a missing one passes.

    The CLI and the SDK call this before they connect to a socket in it: they would send
    secrets to whoever made it.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise NotPrivate(_describe(folder, what, exc)) from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_uid != os.getuid():
        raise NotPrivate(_foreign(folder, what, info.st_uid))
    if info.st_mode & 0o022:  # another user could have put a socket of theirs in it
        mode = f"{stat.S_IMODE(info.st_mode):o}"
        raise NotPrivate(f"{what} {folder} is writable by other users (mode {mode}): {_fix(what)}")


def open_failure(path: Path, exc: OSError) -> str:
    """The one line for a file of the home flow cannot open: a symbolic link planted where
    flow writes (opened with O_NOFOLLOW: ELOOP) said as such, not `Too many levels of
    symbolic links`."""
    if exc.errno == errno.ELOOP:
        return f"{path} is a symbolic link, not a file flow made: remove it (flow never " \
            "writes through one)"  # fmt: skip
    return f"cannot open {path}: {exc.strerror or exc}"


def prepare_home(home: Path) -> None:
    """FLOW_HOME made 0700 (or tightened, with its files 0600); another user's is refused."""
    try:
        # a folder flow makes for it is never writable by others, whatever the umask
        home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise NotPrivate(f"cannot create FLOW_HOME {home}: {exc.strerror or exc}") from None
    _refuse_a_shared_folder(home)
    loose = ensure_private_dir(home, "FLOW_HOME")
    # once the home is ours and 0700 nobody else can reach inside; a home that was open
    # (made by an older flow) has its whole tree tightened, once: flow's own entries only
    _tighten(home, recurse=loose, only=_is_flows)


def _is_flows(name: str) -> bool:
    """Whether a FLOW_HOME entry is one flow makes (node_sdk/paths.py, the cluster keys,
    config.toml, a state store moved aside)."""
    return name in _FLOW_ENTRIES or name.startswith(("state.db", "state.reserve", "daemon."))


_FLOW_ENTRIES = frozenset({"runs", "cluster", "config.toml"})


def _refuse_a_shared_folder(home: Path) -> None:
    """A FLOW_HOME that other users can read and that holds what flow did not make (a slip:
    FLOW_HOME=$HOME, =., =/srv) is refused untouched: flow would make it 0700 (it used to
    make its whole tree private, every file of it)."""
    try:
        info = os.lstat(home)
        if not stat.S_ISDIR(info.st_mode) or not info.st_mode & 0o077:
            return  # not a folder (said later, as such), or private already
        foreign = sorted(name for name in os.listdir(home) if not _is_flows(name))
    except OSError:
        return  # missing (made next), or unreadable (said by ensure_private_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        mode = f"{stat.S_IMODE(info.st_mode):o}"
        raise NotPrivate(
            f"FLOW_HOME {home} is not a flow home: it holds {shown} and other users can "
            f"read it (mode {mode}); flow makes its home private (0700): point FLOW_HOME at "
            f"a folder of its own, e.g. {home / 'flow'}"
        )


def _tighten(folder: Path, *, recurse: bool, only: Callable[[str], bool] | None = None) -> None:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return  # a run folder removed meanwhile
    except OSError as exc:
        raise NotPrivate(f"cannot read {folder}: {exc.strerror or exc}") from None
    for entry in entries:
        if only is not None and not only(entry.name):
            continue  # not flow's: left as it is
        try:
            _tighten_entry(entry, recurse)
        except FileNotFoundError:
            continue  # SQLite's -wal/-shm, a pid file: gone between the listing and now
        except OSError as exc:
            raise NotPrivate(f"cannot make {entry.path} private: {exc.strerror or exc}") from None


def _tighten_entry(entry: os.DirEntry[str], recurse: bool) -> None:
    info = entry.stat(follow_symlinks=False)
    if info.st_uid != os.getuid() or stat.S_ISLNK(info.st_mode):
        return  # not ours to change: root's files in a user's home, links
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        if recurse:
            if mode & 0o077:
                os.chmod(entry.path, PRIVATE_DIR)
            _tighten(Path(entry.path), recurse=True)
    elif mode & 0o077:
        os.chmod(entry.path, mode & 0o700)
