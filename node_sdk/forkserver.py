"""A run's fork server: a Python that has imported the SDK forks each of the run's Python nodes.

The keeper starts one (`python -u -c START FD`, daemon/keeper/forking.py) and sends it one
request per node over a Unix socket: the node's argv, environment and folder, with the
write ends of its stdout and stderr pipes attached (SCM_RIGHTS). The server forks a middle
process, which forks the node, replies with its pid and leaves at once, so the node is
re-parented to the keeper, a subreaper,
and the keeper waits on it, signals its group and reads its pipes as for a node it
started with exec. The node then runs its script as `__main__` (node_sdk/forkchild.py).

The server never holds a ZeroMQ context, and no thread runs in it when it forks: numpy's
BLAS threads (started at its import) end at a first fork (OpenBLAS stops them in its
`pthread_atfork` handler), pyarrow's jemalloc is told not to start its own (the keeper
sets `JE_ARROW_MALLOC_CONF`), and the threads are counted before every fork. numpy and
pyarrow are imported when a script it is asked to fork imports them itself.

Frames both ways: 4 bytes of length, then JSON. Requests are decoded by one total function.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import re
import select
import socket
import sys
from typing import Any, Final

from node_sdk.errors import NodeError
from node_sdk.forkchild import ForkRequest, Job, env_block, proc_areas, run_as_main
from node_sdk.strictjson import Fields, loads

MAX_FRAME: Final = 64 * 1024 * 1024  # an environment may carry a large FLOW_NODE_CONFIG
MAX_ITEMS: Final = 100_000
SCRIPT_SCAN: Final = 1024 * 1024  # how much of a script is read to see what it imports
REAP_S: Final = 0.05  # how often a quiet server looks for its middle processes leaving
# numpy and pyarrow are imported when a script imports them: what a camera or an arrow
# node pays for most (a dependency of a module of the script's is not seen)
_IMPORTS: Final = re.compile(rb"^[ \t]*(?:import|from)[ \t]+(numpy|pyarrow)\b", re.MULTILINE)
# How the keeper starts it: the modules of a bare interpreter are noted first, so only what
# the server imported on top counts as preloaded (a script's folder must not shadow those).
START: Final = (
    "import sys; bare = frozenset(sys.modules); "
    "import node_sdk.forkserver as server; server.main(bare)"
)


def encode(message: dict[str, Any]) -> bytes:
    """One frame: the length, then the JSON."""
    body = json.dumps(message).encode()
    return len(body).to_bytes(4, "big") + body


def decode_request(data: bytes) -> ForkRequest:
    """The total decoder of a request: a ForkRequest or NodeError."""
    fields = Fields(loads(data, "fork request", max_bytes=MAX_FRAME, max_depth=4), "fork request")
    argv = fields.texts("argv", max_items=MAX_ITEMS, max_len=MAX_FRAME)
    if len(argv) < 3:
        fields.fail("argv", "must hold the interpreter, -u and the script")
    env = fields.mapping("env", max_items=MAX_ITEMS)
    if not all(isinstance(v, str) for v in env.values()):
        fields.fail("env", "must map names to strings")
    return ForkRequest(
        number=fields.integer("id", 0, 2**62),
        argv=argv,
        env=dict(env),
        cwd=fields.text("cwd"),
        parent=fields.integer("parent", 1, 2**31),
        die_with_parent=fields.flag("die_with_parent"),
        cpus=fields.integers("cpus", 0, 2**16, max_items=MAX_ITEMS),
    )


def read_frame(channel: socket.socket, fds: int = 0) -> tuple[bytes, list[int]] | None:
    """One frame and the descriptors sent with it; None at the end of the stream."""
    head, received = b"", []
    while len(head) < 4:
        if fds:
            part, got, _, _ = socket.recv_fds(channel, 4 - len(head), fds)
            received.extend(got)
        else:
            part = channel.recv(4 - len(head))
        if not part:
            for fd in received:
                os.close(fd)
            return None
        head += part
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME:
        raise NodeError(f"fork channel: a frame of {size} bytes")
    body = bytearray()
    while len(body) < size:
        part = channel.recv(min(size - len(body), 1 << 20))
        if not part:
            return None
        body += part
    return bytes(body), received


def threads() -> int:
    """How many threads this process runs."""
    return len(os.listdir("/proc/self/task"))


class Server:
    """The loop: one request, one fork (whose middle process replies)."""

    def __init__(self, channel: socket.socket, bare: frozenset[str]) -> None:
        self.channel = channel
        self.bare = bare
        self.base_path = tuple(sys.path[1:])  # [0] is the '' of `-c`
        self.pid = os.getpid()  # a forked process is not the server
        self.leaving = 0  # middle processes forked and not collected yet

    def preloaded(self) -> set[str]:
        """The top-level names imported here that a bare interpreter does not have."""
        return {name.partition(".")[0] for name in sys.modules} - self.bare

    def serve(self) -> Job | None:
        """Until the keeper closes the channel (None); in a forked node, its Job."""
        while True:
            # a middle leaves within milliseconds of its fork: collected while the channel
            # is quiet, so that none waits as a zombie until the next request
            while self.leaving and not select.select([self.channel], [], [], REAP_S)[0]:
                self.leaving -= reap()
            frame = read_frame(self.channel, fds=2)
            if frame is None:
                return None
            data, fds = frame
            try:
                request = decode_request(data)
                if len(fds) != 2:
                    raise NodeError(f"fork request: {len(fds)} descriptors, not 2")
            except NodeError as exc:  # no number to answer with: the keeper gives up on it
                self._reply({"id": None, "fallback": str(exc)})
                for fd in fds:
                    os.close(fd)
                continue
            job = self._start(request, fds[0], fds[1])
            if job is not None:
                return job

    def _reply(self, message: dict[str, Any]) -> None:
        self.channel.sendall(encode(message))

    def _start(self, request: ForkRequest, stdout: int, stderr: int) -> Job | None:
        """Fork the middle process and go back to the channel at once: the middle forks
        the node, replies with its pid itself and leaves (replies are numbered: the keeper
        may have sent the next requests already)."""
        try:
            why = self._why_not(request)
            if why is not None:
                self._reply({"id": request.number, "fallback": why})
                return None
            left_r, left_w = os.pipe()  # its end tells the node the middle has left
            # what the server made so far is left alone by a node's garbage collections
            # (they would write to every page shared with the server) and by the close of
            # its own files at its end (node_sdk/forkchild.py)
            gc.freeze()
            try:
                middle = os.fork()
            except OSError as exc:  # out of processes or memory for now: an exec may do
                os.close(left_r)
                os.close(left_w)
                self._reply({"id": request.number, "fallback": f"cannot fork: {exc}"})
                return None
            if middle == 0:
                return self._middle(request, stdout, stderr, (left_r, left_w))
            self.leaving += 1
            os.close(left_r)
            os.close(left_w)
            return None
        finally:
            if os.getpid() == self.pid:
                os.close(stdout)
                os.close(stderr)
                self.leaving -= reap()

    def _middle(
        self, request: ForkRequest, stdout: int, stderr: int, left: tuple[int, int]
    ) -> Job:
        """The middle process: fork the node, reply with its pid, leave (the node is then
        re-parented to the nearest subreaper, the keeper)."""
        try:
            node = os.fork()
        except OSError as exc:
            self._reply({"id": request.number, "fallback": f"the second fork failed: {exc}"})
            os._exit(1)
        if node != 0:
            with contextlib.suppress(OSError):
                self._reply({"id": request.number, "pid": node})
            os._exit(0)
        os.close(left[1])
        self.channel.close()
        return Job(request, stdout, stderr, self.base_path, left[0])

    def _why_not(self, request: ForkRequest) -> str | None:
        """Why this node must be exec'd instead (None: fork it), after importing what its
        script imports that is worth having here."""
        self._preload(request.script)
        (_, _), (env_start, env_end) = proc_areas()
        if len(env_block(request.env)) >= env_end - env_start:
            return "its environment is larger than the room the server has for it"
        if threads() > 1:
            return f"the fork server runs {threads()} threads"
        preloaded = self.preloaded()
        folders = [os.path.dirname(os.path.realpath(request.script))]
        folders += python_path(request.env.get("PYTHONPATH", ""))
        for folder in folders:
            clash = shadowed(folder, preloaded)
            if clash:
                return f"{os.path.join(folder, clash)} would shadow the preloaded {clash}"
        return None

    def _preload(self, script: str) -> None:
        try:
            with open(script, "rb") as fh:
                head = fh.read(SCRIPT_SCAN)
        except OSError:
            return  # the node reports it, as an exec'd one would
        wanted = {m.decode() for m in _IMPORTS.findall(head)} - set(sys.modules)
        for name in sorted(wanted):
            with contextlib.suppress(Exception):  # not installed, broken: the node says so
                importlib.import_module(name)
        if wanted and threads() > 1:
            retire_threads()


def reap() -> int:
    """Collect the middle processes that have left (the server's only children); how many."""
    collected = 0
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            collected += 1
    return collected


def retire_threads() -> None:
    """Fork once and leave: OpenBLAS (numpy's) ends its worker threads before a fork and
    starts them again only when it next computes, which this process never does."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def python_path(value: str) -> list[str]:
    """The folders PYTHONPATH adds, absolute, as the interpreter reads them."""
    return [os.path.abspath(p) for p in value.split(os.pathsep)] if value else []


def shadowed(folder: str, names: set[str]) -> str | None:
    """The first of `names` a module or package in `folder` would stand for, if any (not
    when it is the very one imported here, as from a PYTHONPATH naming flow's own tree)."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return None
    for entry in entries:
        stem = entry.partition(".")[0]
        if stem not in names:
            continue
        path = os.path.join(folder, entry)
        if not entry.endswith((".py", ".pyc", ".so")) and not os.path.isfile(
            os.path.join(path, "__init__.py")
        ):
            continue  # a namespace package loses to the module found later
        loaded = getattr(sys.modules.get(stem), "__file__", None) or ""
        if os.path.realpath(loaded) not in (
            os.path.realpath(path),
            os.path.realpath(os.path.join(path, "__init__.py")),
        ):
            return stem
    return None


def main(bare: frozenset[str]) -> None:
    """The server's life: import the SDK (no context, no thread), then serve."""
    importlib.import_module("node_sdk.node")
    channel = socket.socket(fileno=int(sys.argv[1]))
    server = Server(channel, bare)
    channel.sendall(encode({"ready": os.getpid(), "threads": threads()}))
    job = server.serve()
    if job is None:
        # the middle processes still leaving are collected here, not left to the keeper
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-1, 0)
        os._exit(0)  # nothing to flush: a keeper that waits for this waits less
    run_as_main(job)
