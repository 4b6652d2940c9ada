"""Matrix row 23 and issue 11 item 2: another local user can neither answer for nor reach flow.

Run as root, with `nobody` as the other user (`setpriv`), in a world-writable sticky folder
like /tmp used as XDG_RUNTIME_DIR, so the socket folder's name is one another user can take.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NODES, flow, flow_env
from procs import daemon_pid

from daemon.model.pids import alive
from node_sdk import paths

NOBODY = 65534
SETPRIV = shutil.which("setpriv")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None,
    reason="needs root and setpriv to act as another local user (nobody)",
)

GRAPH = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: counter/count, queue_size: 1000}}
"""

# the other user's fake daemon: takes the socket folder first and notes whatever reaches it
FAKE_DAEMON = """
import os, select, socket, sys, time
folder, log = sys.argv[1], sys.argv[2]
os.mkdir(folder, 0o755)
servers = []
for name in ("control", "nodes"):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.path.join(folder, name))
    os.chmod(os.path.join(folder, name), 0o777)
    server.listen(8)
    servers.append(server)
open(os.path.join(folder, "ready"), "w").close()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    ready, _, _ = select.select(servers, [], [], 0.2)
    for server in ready:
        conn, _ = server.accept()
        conn.settimeout(1)
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        with open(log, "ab") as out:
            out.write(b"connection: " + data + b"\\n")
        conn.close()
"""


def as_nobody(*argv: str, **kwargs: object) -> subprocess.Popen[str]:
    assert SETPRIV is not None
    prefix = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.Popen([*prefix, *argv], text=True, **kwargs)  # type: ignore[call-overload]


def run_as_nobody(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = as_nobody(
        *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder like /tmp (world-writable, sticky) as XDG_RUNTIME_DIR: its names can be taken."""
    folder = Path(tempfile.mkdtemp(prefix="shared", dir="/tmp"))
    folder.chmod(0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def xdg(shared: Path) -> dict[str, str]:
    return {"XDG_RUNTIME_DIR": str(shared)}


def write_graph(tmp_path: Path) -> Path:
    yml = tmp_path / "graph.yml"
    yml.write_text(GRAPH)
    return yml


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_item2_foreign_socket_folder_is_refused_and_nothing_is_sent(
    flow_home: Path, tmp_path: Path, shared_tmp: Path
) -> None:
    folder = paths.socket_dir(flow_home)
    assert folder.parent == shared_tmp
    heard = shared_tmp / "heard.log"
    fake_script = shared_tmp / "fake_daemon.py"
    fake_script.write_text(FAKE_DAEMON)
    fake = as_nobody(sys.executable, str(fake_script), str(folder), str(heard))
    try:
        deadline = time.monotonic() + 10
        while not (folder / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (folder / "ready").exists(), "the other user's fake daemon did not start"
        yml = write_graph(tmp_path)
        env = xdg(shared_tmp)
        up = flow("up", home=flow_home, env_extra=env)
        assert up.returncode == 1, up.stdout + up.stderr
        one_error_line(up, str(folder), f"another user (uid {NOBODY})", "XDG_RUNTIME_DIR")
        secret = "FLOW_TEST_SECRET=hunter2"
        started = flow(
            "start", str(yml), "--detach", "--env", secret, home=flow_home, env_extra=env
        )
        assert started.returncode == 1, started.stdout + started.stderr
        one_error_line(started, str(folder), "another user")
        listed = flow("list", home=flow_home, env_extra=env)
        assert listed.returncode == 1
        one_error_line(listed, str(folder), "another user")
        attach = subprocess.run(
            [sys.executable, "-c", "from node_sdk import Node; Node('dyn')"],
            env=flow_env(flow_home, env),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert attach.returncode != 0
        assert "another user" in attach.stderr, attach.stderr
        assert "NodeError" in attach.stderr, attach.stderr
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=10)
    # nothing reached the other user, and nothing of theirs was taken or removed
    assert not heard.exists(), heard.read_text()
    assert {p.name for p in folder.iterdir()} == {"control", "nodes", "ready"}
    assert folder.stat().st_uid == NOBODY
    assert not paths.daemon_pid_file(flow_home).exists()


def test_item2_symlink_at_the_socket_folder_is_refused_and_its_target_untouched(
    flow_home: Path, tmp_path: Path, shared_tmp: Path
) -> None:
    victim = tmp_path / "victim"
    for sub in ("a", "b"):
        (victim / sub).mkdir(parents=True)
        (victim / sub / "data").write_text(sub)
    victim.chmod(0o755)
    folder = paths.socket_dir(flow_home)
    made = run_as_nobody(
        sys.executable, "-c", f"import os; os.symlink({str(victim)!r}, {str(folder)!r})"
    )
    assert made.returncode == 0, made.stderr
    assert folder.is_symlink()
    up = flow("up", home=flow_home, env_extra=xdg(shared_tmp))
    assert up.returncode == 1, up.stdout + up.stderr
    one_error_line(up, str(folder), "symbolic link")
    # the daemon itself refuses too, in one line, before anything is touched
    serve = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--home", str(flow_home)],
        env=flow_env(flow_home, xdg(shared_tmp)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert serve.returncode == 1
    one_error_line(serve, str(folder), "symbolic link")
    assert sorted(p.name for p in victim.iterdir()) == ["a", "b"]
    assert all((victim / sub / "data").read_text() == sub for sub in ("a", "b"))
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert sorted(p.name for p in folder.iterdir()) == ["a", "b"]  # still the link


def private_tree(home: Path) -> list[str]:
    """Every path under `home` (itself included) that another user could read: should be none."""
    loose = []
    for path in [home, *home.rglob("*")]:
        info = path.lstat()
        if stat.S_ISSOCK(info.st_mode):
            continue
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) & 0o077 or (
            path in (home,) and stat.S_IMODE(info.st_mode) != want
        ):
            loose.append(f"{path} {stat.S_IMODE(info.st_mode):o}")
    return loose


def loosen(home: Path) -> None:
    """A home as an older flow left it: open to everyone, with a readable old node log."""
    old_log = home / "runs" / "old" / "logs" / "n.log"
    old_log.parent.mkdir(parents=True)
    old_log.write_text("secret\n")
    for path in (home, home / "runs", home / "runs" / "old", old_log.parent):
        path.chmod(0o755)
    old_log.chmod(0o644)
    (home / "daemon.log").write_text("")
    (home / "daemon.log").chmod(0o644)


def assert_unreadable_by_nobody(path: Path) -> None:
    peek = run_as_nobody("/bin/cat", str(path))
    assert peek.returncode != 0, f"another user read {path}"
    assert "Permission denied" in peek.stderr


def assert_private(home: Path, node_log: Path) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for file in (paths.state_db(home), node_log):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert private_tree(home) == []
    assert_unreadable_by_nobody(node_log)


def test_item2_flow_run_keeps_flow_home_private(flow_home: Path, tmp_path: Path) -> None:
    loosen(flow_home)
    yml = write_graph(tmp_path)
    old_umask = os.umask(0o022)  # a usual umask: what flow creates must not depend on it
    try:
        done = flow("run", str(yml), "--stop-after", "1s", home=flow_home)
    finally:
        os.umask(old_umask)
    assert done.returncode == 0, done.stdout + done.stderr
    logs = sorted(flow_home.glob("runs/*/logs/sink.log"))
    assert len(logs) == 1
    assert_private(flow_home, logs[0])
    assert stat.S_IMODE((flow_home / "daemon.log").stat().st_mode) == 0o600
    assert_unreadable_by_nobody(flow_home / "runs" / "old" / "logs" / "n.log")


def test_item2_another_user_cannot_take_flow_runs_socket_folder_first(
    flow_home: Path, tmp_path: Path
) -> None:
    # the names `flow run` would take for the next pids, made first by another user
    after = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    taken = [Path(f"/tmp/flow-{os.getuid()}-fg{pid}") for pid in range(after + 1, after + 400)]
    for folder in taken:
        folder.mkdir(mode=0o777, exist_ok=True)
        os.chown(folder, NOBODY, NOBODY)
    try:
        done = flow("run", str(write_graph(tmp_path)), "--stop-after", "1s", home=flow_home)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        for folder in taken:
            folder.rmdir()


def test_item2_flow_up_and_start_keep_flow_home_private(flow_home: Path, tmp_path: Path) -> None:
    loosen(flow_home)
    yml = write_graph(tmp_path)
    assert flow("up", home=flow_home).returncode == 0
    try:
        done = flow("start", str(yml), "--detach", "--name", "private", home=flow_home)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while not sorted(flow_home.glob("runs/*/logs/sink.log")):
            assert time.monotonic() < deadline, "the sink never logged"
            time.sleep(0.1)
        logs = sorted(flow_home.glob("runs/*/logs/sink.log"))
        assert len(logs) == 1
        assert_private(flow_home, logs[0])
        assert stat.S_IMODE(paths.daemon_log(flow_home).stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.daemon_pid_file(flow_home).stat().st_mode) == 0o600
    finally:
        assert flow("down", home=flow_home).returncode == 0


def test_row23_another_user_cannot_reach_the_control_socket(
    flow_home: Path, tmp_path: Path, shared_tmp: Path
) -> None:
    env = xdg(shared_tmp)
    assert flow("up", home=flow_home, env_extra=env).returncode == 0
    try:
        pid = daemon_pid(flow_home)
        before = flow("list", "--all", "--json", home=flow_home, env_extra=env).stdout
        folder = paths.socket_dir(flow_home)
        control = folder / paths.CONTROL_SOCKET
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        # the other user's own `flow list`, aimed at the same home and socket folder
        theirs = run_as_nobody(sys.executable, "-m", "cli", "list", env=flow_env(flow_home, env))
        assert theirs.returncode != 0
        assert "Traceback" not in theirs.stderr
        # a raw connect is refused by the kernel: the folder is 0700
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n"
        )
        raw = run_as_nobody(sys.executable, "-c", probe, str(control))
        assert raw.returncode == 13, raw.stdout + raw.stderr
        # behind the folder, a second wall: the daemon's sockets take only its own uid
        folder.chmod(0o755)
        control.chmod(0o777)
        try:
            ping = textwrap.dedent(
                f"""
                import json, sys, zmq
                s = zmq.Context().socket(zmq.DEALER)
                s.linger = 0
                s.connect("ipc://{control}")
                ping = {{"v": 1, "id": "x", "type": "ping", "body": {{}}}}
                s.send_multipart([b"", json.dumps(ping).encode()])
                sys.exit(0 if s.poll(2000) else 7)
                """
            )
            answered = run_as_nobody(sys.executable, "-c", ping, env=flow_env(flow_home))
            assert answered.returncode == 7, answered.stdout + answered.stderr
        finally:
            folder.chmod(0o700)
        assert alive(pid)
        after = flow("list", "--all", "--json", home=flow_home, env_extra=env)
        assert after.returncode == 0
        assert after.stdout == before
    finally:
        assert flow("down", home=flow_home, env_extra=env).returncode == 0


def test_item2_another_users_flow_home_is_refused(flow_home: Path, tmp_path: Path) -> None:
    theirs = flow_home / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    yml = write_graph(tmp_path)
    for argv in (["run", str(yml)], ["up"]):
        done = flow(*argv, home=theirs)
        assert done.returncode == 1, done.stdout + done.stderr
        one_error_line(done, f"FLOW_HOME {theirs} belongs to another user (uid {NOBODY})")
    assert list(theirs.iterdir()) == []  # nothing written into it
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755
