"""The keeper's side of its run's fork servers (node_sdk/forkserver.py): Python nodes by fork.

Servers per keeper, so per run (one per set of start-up settings, most runs have one):
the nodes they fork are re-parented to the keeper (a subreaper), which waits on them,
signals their groups and reads their pipes exactly as for a node it exec'd; a server
lives and dies with its keeper, and its environment is the run's (that of the first node
that needs it), not the daemon's.

A node is exec'd instead when it is not `[this interpreter, -u, script.py, ...]`, when it
asks (`spawn: exec`, or `FLOW_SPAWN=exec` in its environment), when its folder holds a
module that would shadow one the server imported, and whenever no server can be had. A
node's interpreter start-up settings (`PYTHON*`, locale, library thread counts, `LD_*`:
STARTUP_PREFIXES) pick its server: a server has the settings of the nodes it forks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO

import attrs

from daemon.keeper.reaper import die_with_this_thread
from node_sdk.forkserver import START, encode, read_frame

log = logging.getLogger(__name__)

READY_S = 20.0  # the server's own start (imports) under load
REPLY_S = 20.0  # one fork under load
REPARENT_S = 5.0  # a middle process that replied and has not left by then: not ours
MAX_STARTS = 6  # servers started by one keeper: a few settings, a few restarts
ENV_ROOM = 256 * 1024  # a node's environment, FLOW_NODE_CONFIG included, up to this size
ROOM_PART = 64 * 1024
ARGV_ROOM = 4096  # a longer command line is cut in `ps` (only there)
# what the interpreter or a preloaded library reads from the environment when it starts
STARTUP_PREFIXES = (
    "PYTHON", "LC_", "LANG", "HOME", "LD_", "OPENBLAS_", "OMP_", "MKL_", "GOTO", "BLIS_",
    "NUMPY_", "NPY_", "ARROW_", "JE_", "MALLOC_",
)  # fmt: skip
NOT_STARTUP = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})  # the fork applies these itself


class ForkServerLost(Exception):
    """The server did not answer as it should: it is given up, the node is exec'd."""


def startup_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of `env` an interpreter and its preloaded libraries read as they start."""
    return {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES) and k not in NOT_STARTUP}


def forkable(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """A Python script run by this interpreter (`routing.node_argv`) that did not ask for exec."""
    python_script = len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-u"
    return python_script and argv[2].endswith(".py") and env.get("FLOW_SPAWN") != "exec"


@attrs.define(eq=False)
class ForkedProcess:
    """A forked node, the keeper's child: what the keeper uses of a `Popen`."""

    pid: int
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    returncode: int | None = None

    def poll(self) -> int | None:
        return self._wait(os.WNOHANG)

    def wait(self) -> int:
        code = self._wait(0)
        assert code is not None
        return code

    def _wait(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                self.returncode = 0  # collected elsewhere: as Popen says then
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


@attrs.define(eq=False)
class ForkServer:
    """One running server and the keeper's end of its channel."""

    process: subprocess.Popen[bytes]
    channel: socket.socket
    settings: dict[str, str]  # its start-up settings: a node's must be the same

    @classmethod
    def start(cls, env: Mapping[str, str]) -> ForkServer:
        """A server with the run's environment (`env`, a node's); ForkServerLost, OSError."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # FLOW_HOME and FLOW_DATAFLOW stay: a forked node's /proc/PID/environ is the
        # server's, and the sweeps after a crash find a run's processes by them
        server_env = dict(env)
        server_env.pop("FLOW_NODE_CONFIG", None)  # one node's
        server_env.pop("PYTHONPATH", None)  # its sys.path is the interpreter's own
        # pyarrow's jemalloc would start a thread at its import (see node_sdk/forkserver)
        server_env.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
        # room in its initial environment and command line for a node's (node_sdk/forkchild)
        for part in range(ENV_ROOM // ROOM_PART):  # one string may hold 128 KiB at most
            server_env[f"FLOW_FORK_ROOM{part}"] = "." * ROOM_PART
        try:
            process = subprocess.Popen(
                [sys.executable, "-u", "-c", START, str(theirs.fileno()), " " * ARGV_ROOM],
                env=server_env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,  # out of reach of a node's group signal
                preexec_fn=die_with_this_thread(),  # never outlives its keeper
            )
        finally:
            theirs.close()
        server = cls(process, mine, startup_settings(env))
        mine.settimeout(READY_S)
        try:
            server._reply()
        except ForkServerLost:
            server.close()
            raise
        mine.settimeout(REPLY_S)
        return server

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, in_thread: bool
    ) -> ForkedProcess | str:
        """The forked node, or why it must be exec'd instead; ForkServerLost."""
        if startup_settings(env) != self.settings:
            return "its interpreter settings differ from the fork server's"
        if not os.path.isdir(cwd):
            return f"no folder {cwd}"  # the exec reports it as it always did
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"argv": list(argv), "env": dict(env), "cwd": cwd, "parent": os.getpid(),
                   "die_with_parent": in_thread}  # fmt: skip
        frame = encode(request)
        try:
            socket.send_fds(self.channel, [frame[:4]], [out_w, err_w])
            self.channel.sendall(frame[4:])
            reply = self._reply()
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            raise ForkServerLost(f"fork server: {exc}") from None
        except ForkServerLost:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        pid = reply.get("pid")
        if type(pid) is not int or not becomes_child(pid):
            os.close(out_r)
            os.close(err_r)
            if type(pid) is int:  # not ours to wait on: it must not run unsupervised
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                return "the forked node is not the keeper's child (no subreaper)"
            return str(reply.get("fallback", "the fork server gave no pid"))
        return ForkedProcess(pid, os.fdopen(out_r, "rb", 0), os.fdopen(err_r, "rb", 0))

    def _reply(self) -> dict[str, object]:
        try:
            frame = read_frame(self.channel)
        except (OSError, ValueError) as exc:
            raise ForkServerLost(f"fork server: {exc}") from None
        if frame is None:
            raise ForkServerLost(f"fork server ended ({self.process.poll()})")
        try:
            reply = json.loads(frame[0])
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise ForkServerLost("fork server: a reply that is not an object")
        return reply

    def close(self) -> None:
        """End it: the closed channel ends its loop; SIGKILL if it does not end soon."""
        self.channel.close()
        try:
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def becomes_child(pid: int) -> bool:
    """True once `pid` is this process's child (running or not yet waited for): the middle
    process replied just before it left, so that is a matter of microseconds; False
    after REPARENT_S (this process is no subreaper, or the node is gone)."""
    deadline = time.monotonic() + REPARENT_S
    while True:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0002)
        else:
            return True


@attrs.define(eq=False)
class Forker:
    """A keeper's way to its fork servers: one per set of start-up settings its Python
    nodes have (most runs: one), started with the first node that needs it, started again
    after it died; at most MAX_STARTS starts in all, then exec."""

    enabled: bool = False  # only a subreaper keeper: the nodes must come back to it
    servers: dict[tuple[tuple[str, str], ...], ForkServer] = attrs.field(factory=dict)
    starts: int = 0

    @property
    def pids(self) -> set[int]:
        return {server.process.pid for server in self.servers.values()}

    def fork(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, in_thread: bool
    ) -> ForkedProcess | None:
        """The node forked by a server, or None: exec it."""
        if not self.enabled or not forkable(argv, env):
            return None
        key = tuple(sorted(startup_settings(env).items()))
        server = self.servers.get(key)
        if server is not None and server.process.poll() is not None:
            self._lost(key, f"fork server exited with {server.process.returncode}")
            server = None
        if server is None:
            if self.starts >= MAX_STARTS:
                return None
            self.starts += 1
            try:
                server = self.servers[key] = ForkServer.start(env)
            except (OSError, ForkServerLost) as exc:
                log.warning("keeper: no fork server (%s): Python nodes start with exec", exc)
                return None
        try:
            got = server.spawn(argv, env, cwd, in_thread)
        except ForkServerLost as exc:
            self._lost(key, str(exc))
            return None
        if isinstance(got, str):
            log.info("keeper: %s: exec, not fork: %s", argv[2], got)
            return None
        return got

    def _lost(self, key: tuple[tuple[str, str], ...], why: str) -> None:
        log.warning("keeper: %s; its nodes start with exec until it is started again", why)
        server = self.servers.pop(key, None)
        if server is not None:
            server.close()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
