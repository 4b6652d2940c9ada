"""A forked node becomes what `python -u script.py ARGS` would have started, then runs it.

Its process: own session and group, stdin from /dev/null, stdout and stderr the keeper's
pipes, the node's folder and environment; `sys.argv`, `sys.path` (the script's folder
first, then PYTHONPATH's, then the interpreter's own, duplicates dropped as `site` does)
and a fresh `__main__` module, so the script sees what an exec'd one sees. Its end is the
interpreter's, up to the point where the interpreter would free every module: `sys.exit`
codes, a traceback and 1, death by SIGINT on an uncaught KeyboardInterrupt, non-daemon
threads waited for, atexit handlers, and the files the node opened and left open closed
(flushed). The rest of a normal teardown, freeing every object, would write to each page
the node shares with its server and make the kernel copy it: about 20 ms of CPU a node,
more than the whole fork; the process exits instead (`os._exit`).
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import ctypes
import gc
import importlib
import importlib.machinery
import io
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, NoReturn

from node_sdk import uncaught

_PR_SET_PDEATHSIG: Final = 1
REPARENT_S: Final = 5.0
_LIBC: Final = ctypes.CDLL(None, use_errno=True)  # made once in the server, not per node
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
    cpus: tuple[int, ...] = ()  # dora's `cpu_affinity`: set before any of the node's code

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


def run_as_main(job: Job) -> NoReturn:
    """Become the node, run its script and end as `python script.py` would (only this
    module's frames are left out of a traceback)."""
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
    _end(_run(code, main.__dict__))


def _run(code: types.CodeType, namespace: dict[str, object]) -> int | None:
    """The script's exit status as the interpreter makes it; None: an uncaught
    KeyboardInterrupt (the process then dies by SIGINT, as the interpreter's does)."""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        return exit_status(exc.code)
    except BaseException as exc:  # what the interpreter would print and exit 1 for
        # kept where the interpreter keeps an uncaught exception, for the exit's handlers
        # (Node.close: a parameter change being handled was not taken)
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return None if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def exit_status(code: object) -> int:
    """A `SystemExit` code as the interpreter turns it into a status: None 0, an integer
    itself (the kernel keeps its low byte), anything else printed to stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with _reported():
        print(code, file=sys.stderr)
    return 1


def _end(status: int | None) -> NoReturn:
    """The interpreter's end (Py_FinalizeEx) up to the freeing of every module: threads
    waited for, atexit handlers, the node's own open files closed, stdio flushed."""
    threading = sys.modules.get("threading")
    if threading is not None:
        with _reported():
            threading._shutdown()  # what the interpreter calls: non-daemon threads waited for
    atexit._run_exitfuncs()  # prints a handler's exception, as the interpreter does
    # stdio flushed before the node's files are closed and after, as the interpreter does:
    # one of them may be a second writer of fd 1 or 2
    _flush_stdio()
    close_own_files()
    _flush_stdio()
    if status is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        status = 128 + signal.SIGINT  # not reached: SIGINT's default ends the process
    os._exit(status)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a reader that left: nothing more to say
            stream.flush()


def close_own_files() -> None:
    """Close the file objects the node opened and left open, as freeing them would (a
    buffered writer's data reaches its file, a gzip file gets its trailer), the outermost
    first: a wrapper's close flushes into what it wraps. Only the node's own objects are
    looked at: the server froze its own before forking (`gc.freeze`), and those
    `gc.get_objects` leaves out; stdio is flushed, not closed."""
    keep = {id(s) for s in (sys.stdout, sys.stderr, sys.stdin, sys.__stdout__, sys.__stderr__)}
    files = [
        obj
        for obj in gc.get_objects()
        if issubclass(type(obj), io.IOBase) and id(obj) not in keep
    ]
    wrapped = {id(held) for obj in files for held in _held(obj)}
    for obj in sorted(files, key=lambda f: id(f) in wrapped):  # the outermost first
        with _reported():
            if not obj.closed:
                obj.close()


def _held(obj: object) -> Iterator[object]:
    """What `obj` refers to, its attributes' values included."""
    for ref in gc.get_referents(obj):
        yield ref
        if isinstance(ref, dict):
            yield from ref.values()


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """An exception is printed to stderr and the end goes on, as the interpreter reports
    what fails in its own end."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            traceback.print_exception(exc)


def _become_process(job: Job) -> None:
    request = job.request
    if request.die_with_parent:
        # set once the keeper is its parent: a parent-death signal set under the middle
        # process would fire as that leaves
        os.read(job.left, 1)  # the end of the stream: the middle has closed its files
        deadline = time.monotonic() + REPARENT_S
        while os.getppid() != request.parent and time.monotonic() < deadline:
            time.sleep(0.0002)  # the middle is in its exit, between its files and its children
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != request.parent:  # the keeper died, or never was the subreaper
            os._exit(1)
    os.close(job.left)
    os.setsid()
    if request.cpus:
        # here, before the node's code and any thread it starts (the keeper checked the
        # CPUs are there: daemon/keeper/affinity.py)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, request.cpus)
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
    set_environ(request.env)
    show_as(request.argv, request.env)


def set_environ(env: dict[str, str]) -> None:
    """Make the environment `env`, changing only what differs from the server's (most of
    it is the same): clearing and filling it again cost a node most of a millisecond."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


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
    uncaught.excepthook(kind, value.with_traceback(tb), tb)
