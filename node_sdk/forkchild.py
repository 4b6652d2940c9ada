"""A forked node becomes what `python -u script.py ARGS` would have started, then runs it.

Its process: own session and group, stdin from /dev/null, stdout and stderr the keeper's
pipes, the node's folder and environment; `sys.argv`, `sys.path` (the script's folder
first, then PYTHONPATH's, then the interpreter's own, duplicates dropped as `site` does)
and a fresh `__main__` module, so the script sees what an exec'd one sees. Its end is the
interpreter's own: `sys.exit` codes, a traceback and 1, death by SIGINT on an uncaught
KeyboardInterrupt, atexit handlers and non-daemon threads waited for.
"""

from __future__ import annotations

import builtins
import ctypes
import importlib
import importlib.machinery
import os
import signal
import sys
import time
import types
from dataclasses import dataclass
from types import TracebackType
from typing import Final

_PR_SET_PDEATHSIG: Final = 1
REPARENT_S: Final = 5.0
_OURS: Final = frozenset({"<string>", __file__, __file__.replace("forkchild", "forkserver")})


@dataclass(frozen=True)
class ForkRequest:
    """Start one node: `argv` is `[python, -u, script, *args]`, as an exec would be."""

    number: int  # the keeper's, to match the reply
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    parent: int  # the keeper's pid: the node's parent once the middle process has left
    die_with_parent: bool  # `flow run`: SIGKILL when the keeper's process dies

    @property
    def script(self) -> str:
        return self.argv[2]


@dataclass(frozen=True)
class Job:
    """What the node process does, once forked: become the node (node_sdk/forkchild.py)."""

    request: ForkRequest
    stdout: int
    stderr: int
    base_path: tuple[str, ...]  # sys.path of the interpreter, without a script's folder
    left: int  # reads its end when the middle process has left (the node is re-parented)


def run_as_main(job: Job) -> None:
    """Become the node and run its script; exceptions go to the interpreter, as in
    `python script.py` (only this module's frames are left out of a traceback)."""
    request = job.request
    _become_process(job)
    _set_interpreter(request, job.base_path)
    code = _compile(request.script)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=request.script,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", request.script),
        __spec__=None,
        __package__=None,
        __builtins__=builtins,
        __annotations__={},
    )
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _become_process(job: Job) -> None:
    request = job.request
    if request.die_with_parent:
        # set once the keeper is its parent: a parent-death signal set under the middle
        # process would fire as that leaves
        os.read(job.left, 1)  # the end of the stream: the middle has closed its files
        deadline = time.monotonic() + REPARENT_S
        while os.getppid() != request.parent and time.monotonic() < deadline:
            time.sleep(0.0002)  # the middle is in its exit, between its files and its children
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != request.parent:  # the keeper died, or never was the subreaper
            os._exit(1)
    os.close(job.left)
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(job.stdout, 1)
    os.dup2(job.stderr, 2)
    os.close(job.stdout)
    os.close(job.stderr)
    try:
        os.chdir(request.cwd)
    except OSError as exc:
        print(f"flow: cannot enter {request.cwd}: {exc}", file=sys.stderr)
        os._exit(127)
    os.environ.clear()
    os.environ.update(request.env)
    show_as(request.argv, request.env)


def proc_areas() -> tuple[tuple[int, int], tuple[int, int]]:
    """Where this process's command line and initial environment lie in its memory (what
    /proc/PID/cmdline and /proc/PID/environ show): ((start, end), (start, end))."""
    with open("/proc/self/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
    return (arg_start, arg_end), (env_start, env_end)


def env_block(env: dict[str, str]) -> bytes:
    """An environment as the kernel holds it: `NAME=value` strings, each NUL-terminated."""
    return b"".join(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0" for k, v in env.items())


def show_as(argv: tuple[str, ...], env: dict[str, str]) -> None:
    """Make /proc/PID/cmdline and environ show the node's own, not the server's: `ps`,
    `pkill -f script.py` and the sweeps after a crash (FLOW_DATAFLOW) see the node as an
    exec'd one. The server starts with room for both (the fork is refused when the
    environment would not fit); the command line is written as `setproctitle` does, one
    string (cut to the room), as the kernel then shows it."""
    (arg_start, arg_end), (env_start, env_end) = proc_areas()
    block = env_block(env)
    room = env_end - env_start
    if len(block) < room:
        ctypes.memmove(env_start, block.ljust(room, b"\0"), room)
    title = " ".join(argv).encode(errors="replace")[: arg_end - arg_start - 2] + b"\0"
    # the area's last byte left non-NUL: the kernel reads the title up to its NUL
    ctypes.memmove(arg_start, title.ljust(arg_end - arg_start, b" "), arg_end - arg_start)


def _set_interpreter(request: ForkRequest, base_path: tuple[str, ...]) -> None:
    sys.argv = list(request.argv[2:])
    sys.orig_argv = list(request.argv)
    pythonpath = request.env.get("PYTHONPATH", "")
    entries = [os.path.abspath(p) for p in pythonpath.split(os.pathsep)] if pythonpath else []
    seen: set[str] = set()
    path = []
    for entry in (*entries, *base_path):
        key = os.path.normcase(os.path.abspath(entry))
        if key not in seen:  # as site.removeduppaths
            seen.add(key)
            path.append(os.path.abspath(entry))
    sys.path[:] = [os.path.dirname(os.path.realpath(request.script)), *path]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:  # seeded in the server: every node would draw the same
        numpy_random.seed()
    sys.excepthook = _excepthook


def _compile(script: str) -> types.CodeType:
    try:
        with open(script, "rb") as fh:
            source = fh.read()
    except OSError as exc:  # the interpreter's own words and code
        print(
            f"{sys.executable}: can't open file {script!r}: [Errno {exc.errno}] {exc.strerror}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    return compile(source, script, "exec", dont_inherit=True)


def _excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """The default hook, without the frames of the fork server that led to the script."""
    while tb is not None and tb.tb_frame.f_code.co_filename in _OURS:
        tb = tb.tb_next
    # the default hook prints the exception's own traceback when it has one
    sys.__excepthook__(kind, value.with_traceback(tb), tb)
