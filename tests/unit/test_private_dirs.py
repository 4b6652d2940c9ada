"""Private folders, socket files and the home lock (SPEC 10), without another user."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from daemon.main import hold_home_lock
from daemon.model.errors import ControlSocketUnavailable
from daemon.run import ipc_files
from node_sdk import paths, private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_folder_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert private.ensure_private_dir(tmp_path / "s") is False
    finally:
        os.umask(old)
    assert mode(tmp_path / "s") == 0o700


def test_a_new_home_and_the_folder_made_for_it_are_closed_to_others(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        private.prepare_home(tmp_path / "made" / "home")
    finally:
        os.umask(old)
    assert (mode(tmp_path / "made"), mode(tmp_path / "made" / "home")) == (0o755, 0o700)


def test_a_loose_folder_of_ours_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    folder.chmod(0o777)
    assert private.ensure_private_dir(folder) is True
    assert mode(folder) == 0o700


def test_a_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    link = tmp_path / "s"
    link.symlink_to(target)
    for check in (private.ensure_private_dir, private.check_private_dir):
        with pytest.raises(private.NotPrivate, match="is a symbolic link") as caught:
            check(link)
        assert str(link) in str(caught.value)
        assert "\n" not in str(caught.value)
    assert mode(target) == 0o755


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("")
    with pytest.raises(private.NotPrivate, match="is not a folder"):
        private.ensure_private_dir(tmp_path / "s")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_another_users_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    for check in (private.ensure_private_dir, private.check_private_dir):
        with pytest.raises(private.NotPrivate, match=r"belongs to another user \(uid 65534\)"):
            check(folder)
    assert folder.stat().st_uid == 65534


def test_clients_refuse_a_folder_others_can_write(tmp_path: Path) -> None:
    private.check_private_dir(tmp_path / "missing")  # nothing there yet: the caller decides
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    private.check_private_dir(folder)
    folder.chmod(0o777)
    with pytest.raises(private.NotPrivate, match="writable by other users"):
        private.check_private_dir(folder)


def test_a_loose_home_is_tightened_links_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    logs = home / "runs" / "r" / "logs"
    logs.mkdir(parents=True)
    (logs / "n.log").write_text("x")
    (home / "state.db").write_text("")
    outside = tmp_path / "outside"
    outside.write_text("")
    outside.chmod(0o644)
    (logs / "link.log").symlink_to(outside)
    for path in (home, home / "runs", home / "runs" / "r", logs):
        path.chmod(0o755)
    for path in (logs / "n.log", home / "state.db"):
        path.chmod(0o644)
    private.prepare_home(home)
    assert [mode(p) for p in (home, home / "runs", home / "runs" / "r", logs)] == [0o700] * 4
    assert mode(logs / "n.log") == mode(home / "state.db") == 0o600
    assert mode(outside) == 0o644


def test_a_shared_folder_is_no_flow_home_and_is_left_as_it_is(tmp_path: Path) -> None:
    """FLOW_HOME=$HOME, =., =/srv: a folder other users read, holding what flow did not
    make. Its whole tree was made private (every folder 0700, every file 0600)."""
    home = tmp_path / "srv"
    (home / "www").mkdir(parents=True)
    (home / "www" / "index.html").write_text("hi")
    (home / "state.db").write_text("")  # flow's, beside the rest: still not a flow home
    for path, loose in ((home, 0o755), (home / "www", 0o755), (home / "www" / "index.html",
                        0o644), (home / "state.db", 0o644)):  # fmt: skip
        path.chmod(loose)
    with pytest.raises(private.NotPrivate, match=r"is not a flow home: it holds www and"):
        private.prepare_home(home)
    assert [mode(p) for p in (home, home / "www", home / "www" / "index.html")] == [
        0o755, 0o755, 0o644,
    ]  # fmt: skip


def test_a_private_home_leaves_what_is_not_flows_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "todo.txt").write_text("x")
    (home / "notes" / "todo.txt").chmod(0o644)
    (home / "notes").chmod(0o755)
    (home / "config.toml").write_text("")
    (home / "config.toml").chmod(0o644)
    home.chmod(0o700)
    private.prepare_home(home)
    assert mode(home / "config.toml") == 0o600  # flow's own
    assert mode(home / "notes") == 0o755  # the user's, as they made it
    assert mode(home / "notes" / "todo.txt") == 0o644


def test_a_stale_socket_is_unlinked(tmp_path: Path) -> None:
    path = tmp_path / "control"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    assert ipc_files.is_stale(path)
    ipc_files.claim(path)
    assert not path.exists()


def test_a_live_socket_is_refused_naming_its_process(tmp_path: Path) -> None:
    path = tmp_path / "control"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen(1)
        assert not ipc_files.is_stale(path)
        with pytest.raises(ControlSocketUnavailable, match=f"pid {os.getpid()}"):
            ipc_files.claim(path)
        assert path.is_socket()


def test_only_the_socket_we_bound_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "control"
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as later:
        first.bind(str(path))
        ours = ipc_files.identity(path)
        path.rename(tmp_path / "ours")  # still alive, so the next file cannot reuse its inode
        later.bind(str(path))  # someone else's socket at our path now
        ipc_files.remove_own(path, ours)
        assert path.is_socket()
        ipc_files.remove_own(tmp_path / "ours", ours)
        assert not (tmp_path / "ours").exists()


def test_the_home_lock_admits_one_holder(tmp_path: Path) -> None:
    held = f"another flow daemon \\(pid {os.getpid()}\\) holds"
    with hold_home_lock(tmp_path):
        second = hold_home_lock(tmp_path)
        with pytest.raises(ControlSocketUnavailable, match=held):
            second.__enter__()
    with hold_home_lock(tmp_path):  # released with its holder
        pass
    assert mode(tmp_path / "daemon.lock") == 0o600


def test_an_xdg_runtime_dir_not_ours_alone_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert paths.socket_dir(home).parent == runtime
    runtime.chmod(0o1777)  # like /tmp: others cannot rename what is ours in it
    assert paths.socket_dir(home).parent == runtime
    runtime.chmod(0o777)  # anyone could swap our folder for theirs
    assert paths.socket_dir(home).parent == Path("/tmp")
    if os.geteuid() == 0:
        runtime.chmod(0o700)
        os.chown(runtime, 65534, 65534)  # another user's (kept by `sudo -E`, say)
        assert paths.socket_dir(home).parent == Path("/tmp")


def test_end_orphans_removes_only_stale_sockets(flow_home: Path) -> None:
    from daemon.control.orphans import end_orphaned_keepers

    folder = paths.socket_dir(flow_home)
    private.ensure_private_dir(folder)
    control, nodes = folder / paths.CONTROL_SOCKET, folder / paths.NODES_SOCKET
    with socket.socket(socket.AF_UNIX) as live, socket.socket(socket.AF_UNIX) as dead:
        live.bind(str(control))
        live.listen(1)  # a daemon that is alive, only slow to answer
        dead.bind(str(nodes))
        dead.close()
        assert end_orphaned_keepers(flow_home) == 0
        assert control.is_socket()
        assert not nodes.exists()
        control.unlink()


def test_a_file_gone_while_a_home_is_tightened_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite removes its -wal/-shm when its last connection closes: a race, not an error."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    for name in ("state.db", "state.db-wal"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
    listed = list(os.scandir(home))  # what scandir saw, before the -wal went
    (home / "state.db-wal").unlink()
    with monkeypatch.context() as patch:  # os.scandir is everyone's: undone at once
        patch.setattr(private.os, "scandir", lambda folder: iter(listed))
        private._tighten(home, recurse=True)  # before: FileNotFoundError out of the start
    assert stat.S_IMODE((home / "state.db").stat().st_mode) == 0o600
