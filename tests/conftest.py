"""Each test gets its own FLOW_HOME, and no process or socket may outlive it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ORPHAN_WAIT_S = 10.0
POLL_S = 0.1


@pytest.fixture(autouse=True)
def flow_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private FLOW_HOME (ipc paths stay under 107 bytes); sockets under /tmp."""
    home = Path(tempfile.mkdtemp(prefix="fh", dir="/tmp")).resolve()
    monkeypatch.setenv("FLOW_HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def daemon(flow_home: Path) -> Iterator[Path]:
    """A daemon started with `flow up` for this test, brought down with `flow down --force`."""
    from helpers import daemon_down, daemon_up

    daemon_up(flow_home)
    try:
        yield flow_home
    finally:
        daemon_down(flow_home)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Ctrl-C reaches the processes tests start: an xdist worker begins with SIGINT ignored
    (its controller takes Ctrl-C), and an ignored signal stays ignored in every child, so a
    test's Ctrl-C to a node, `flow top` or `flow run` it started would go unheard."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def sigint_kept(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test: Ctrl-C still reaches this process's children. A SIGINT left ignored
    or blocked here is inherited by every process a later test starts (a pty Ctrl-C test
    then hangs): it is put back, and the test that left it is named in a warning."""
    yield
    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is not signal.default_int_handler or blocked:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        warnings.warn(f"{request.node.nodeid} left SIGINT {handler!r}, blocked={blocked}",
                      stacklevel=1)  # fmt: skip


def _processes_of(home: Path) -> dict[int, str]:
    """pid -> cmdline of every process (but this one) whose environment names this home."""
    marker = f"FLOW_HOME={home}".encode()
    found: dict[int, str] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            if marker not in environ.split(b"\0"):
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone, or not ours to read
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue  # a zombie has exited; its parent has just not reaped it yet
        found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


@pytest.fixture(autouse=True)
def orphan_check(flow_home: Path) -> Iterator[None]:
    """After the test: every process of this FLOW_HOME has exited, no socket file is left."""
    yield
    deadline = time.monotonic() + ORPHAN_WAIT_S
    left = _processes_of(flow_home)
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = _processes_of(flow_home)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    problems = [f"process {pid} outlived the test: {cmd}" for pid, cmd in left.items()]
    sockets = _socket_files(flow_home)
    problems += [f"socket file left behind: {path}" for path in sockets]
    _remove_socket_dir(flow_home)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _socket_files(home: Path) -> list[Path]:
    from node_sdk.paths import socket_dir  # lazily: a broken daemon package fails one check

    folder = socket_dir(home)
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_socket())


def _remove_socket_dir(home: Path) -> None:
    from node_sdk.paths import socket_dir

    shutil.rmtree(socket_dir(home), ignore_errors=True)
