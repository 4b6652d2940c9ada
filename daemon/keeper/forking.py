"""The keeper's side of its run's fork servers (node_sdk/forkserver.py): Python nodes by fork.

Servers per keeper, so per run (one per set of start-up settings, most runs have one):
the nodes they fork are re-parented to the keeper (a subreaper), which waits on them,
signals their groups and reads their pipes exactly as for a node it exec'd; a server
lives and dies with its keeper. The first is started with the keeper, in the keeper's
environment, so its imports overlap the run's start; another is started for a node whose
start-up settings (below) differ, in that node's environment: what of its environment
a forked node keeps (the start-up settings) is always the same as its server's. The
spawns the keeper reads together are sent together (`Forker.prefetch`): the server forks
one node while the keeper registers the one before.

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
from daemon.model.keeper_messages import Spawn
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
    "TZ",  # `time` reads it at its import, the C library at its first use
)  # fmt: skip
NOT_STARTUP = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})  # the fork applies these itself


Key = tuple[tuple[str, str], ...]  # a server's start-up settings


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
    ready: bool = False  # it said so: imports done
    sent: int = 0  # requests numbered: replies may come in another order
    pipes: dict[int, tuple[int, int]] = attrs.field(factory=dict)  # number -> read ends
    replies: dict[int, dict[str, object]] = attrs.field(factory=dict)  # read, not collected

    @classmethod
    def start(cls, env: Mapping[str, str]) -> ForkServer:
        """A server with the run's environment (`env`, a node's), importing the SDK while
        the keeper goes on; the first `send` waits for it. OSError."""
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
        return cls(process, mine, startup_settings(env))

    def send(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, in_thread: bool,
        cpus: Sequence[int] | None = None,
    ) -> int | str:  # fmt: skip
        """Ask for a node: the request's number (its reply comes with `collect`), or why it
        must be exec'd instead; ForkServerLost."""
        if startup_settings(env) != self.settings:
            return "its interpreter settings differ from the fork server's"
        if not os.path.isdir(cwd):
            return f"no folder {cwd}"  # the exec reports it as it always did
        if not self.ready:
            self.channel.settimeout(READY_S)
            self._reply()  # {"ready": pid}
            self.channel.settimeout(REPLY_S)
            self.ready = True
        try:
            out_r, out_w = os.pipe()
        except OSError as exc:  # EMFILE: the exec meets it too, and its spawn is retried
            return f"no pipe for its output: {exc}"
        try:
            err_r, err_w = os.pipe()
        except OSError as exc:
            os.close(out_r)
            os.close(out_w)
            return f"no pipe for its output: {exc}"
        self.sent += 1
        request = {"id": self.sent, "argv": list(argv), "env": dict(env), "cwd": cwd,
                   "parent": os.getpid(), "die_with_parent": in_thread,
                   "cpus": list(cpus or ())}  # fmt: skip
        frame = encode(request)
        self.pipes[self.sent] = (out_r, err_r)
        try:
            socket.send_fds(self.channel, [frame[:4]], [out_w, err_w])
            self.channel.sendall(frame[4:])
        except OSError as exc:
            raise ForkServerLost(f"fork server: {exc}") from None
        finally:
            os.close(out_w)
            os.close(err_w)
        return self.sent

    def collect(self, number: int) -> ForkedProcess | str:
        """The node of request `number`, or why it must be exec'd; ForkServerLost."""
        while number not in self.replies:
            reply = self._reply()
            got = reply.get("id")
            if type(got) is not int or got not in self.pipes:
                raise ForkServerLost(f"fork server: a reply to no request ({got!r})")
            self.replies[got] = reply
        reply = self.replies.pop(number)
        out_r, err_r = self.pipes.pop(number)
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
        for out_r, err_r in self.pipes.values():
            os.close(out_r)
            os.close(err_r)
        self.pipes.clear()
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
    servers: dict[Key, ForkServer] = attrs.field(factory=dict)
    starts: int = 0
    # requests sent, not yet collected: id(the spawn's env) -> (that env, server, number)
    sent: dict[int, tuple[Mapping[str, str], Key, int]] = attrs.field(factory=dict)

    @property
    def pids(self) -> set[int]:
        return {server.process.pid for server in self.servers.values()}

    def prestart(self, env: Mapping[str, str]) -> None:
        """Start a server for nodes with `env`'s settings now (the keeper's own
        environment: most nodes' start-up settings), so its imports overlap the run's
        start instead of delaying its first Python node."""
        if self.enabled and not self.servers:
            key = tuple(sorted(startup_settings(env).items()))
            with contextlib.suppress(OSError):
                self.servers[key] = ForkServer.start(env)
                self.starts += 1
    def prefetch(self, spawns: Sequence[Spawn], live: set[str], in_thread: bool) -> None:
        """Send the requests of these spawns now, all of them, so the server forks one
        node while the keeper registers the last (`fork` collects each; `settle` ends the
        ones no spawn took). Only those the keeper will spawn: one per node, none live."""
        seen = set(live)
        for message in spawns:
            if message.node in seen or not message.fork:
                continue
            seen.add(message.node)
            self._send(message.argv, message.env, message.cwd, in_thread, message.cpu_affinity)

    def fork(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, in_thread: bool,
        cpus: Sequence[int] | None = None,
    ) -> ForkedProcess | None:  # fmt: skip
        """The node forked by a server, or None: exec it."""
        sent = self.sent.pop(id(env), None)
        if sent is None or sent[0] is not env:
            sent = self._send(argv, env, cwd, in_thread, cpus)
        if sent is None:
            return None
        _, key, number = sent
        server = self.servers.get(key)
        if server is None:
            return None
        try:
            got = server.collect(number)
        except ForkServerLost as exc:
            self._lost(key, str(exc))
            return None
        if isinstance(got, str):
            log.info("keeper: %s: exec, not fork: %s", argv[2], got)
            return None
        return got

    def settle(self) -> None:
        """Kill what was forked for a spawn the keeper then refused (none, normally)."""
        sent, self.sent = list(self.sent.values()), {}
        for _, key, number in sent:
            server = self.servers.get(key)
            try:
                got = server.collect(number) if server is not None else ""
            except ForkServerLost as exc:
                self._lost(key, str(exc))
                continue
            if isinstance(got, ForkedProcess):
                with contextlib.suppress(OSError):
                    os.killpg(got.pid, signal.SIGKILL)
                got.wait()
                for stream in (got.stdout, got.stderr):
                    if stream is not None:
                        stream.close()

    def _send(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, in_thread: bool,
        cpus: Sequence[int] | None = None,
    ) -> tuple[Mapping[str, str], Key, int] | None:  # fmt: skip
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
            except OSError as exc:
                log.warning("keeper: no fork server (%s): Python nodes start with exec", exc)
                return None
        try:
            number = server.send(argv, env, cwd, in_thread, cpus)
        except ForkServerLost as exc:
            self._lost(key, str(exc))
            return None
        if isinstance(number, str):
            log.info("keeper: %s: exec, not fork: %s", argv[2], number)
            return None
        sent = (env, key, number)
        self.sent[id(env)] = sent
        return sent

    def _lost(self, key: Key, why: str) -> None:
        log.warning("keeper: %s; its nodes start with exec until it is started again", why)
        server = self.servers.pop(key, None)
        if server is not None:
            server.close()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
