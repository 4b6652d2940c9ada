"""Python nodes forked by the run's fork server behave as exec'd ones (issue 14, point 4).

Every node here runs the same probe, forked (the default) and exec'd (`spawn: exec`,
`FLOW_SPAWN=exec`, another interpreter's start-up settings, a command other than a `.py`
path): what each sees of its process and interpreter must be the same, and so must its
endings, logs, restarts and stop.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
from helpers import BOUND_S, flow, flow_run_ok, wait_for, write_dataflow
from procs import wait_gone

PROBE = """\
import json, os, signal, sys
forked = "node_sdk.forkserver" in sys.modules  # first: nothing of ours imported yet
import helper
from pkg import mod
import psutil
me = psutil.Process()
info = {
    "forked": forked, "argv": sys.argv, "orig_argv": sys.orig_argv[1:], "cwd": os.getcwd(),
    "foo": os.environ.get("FOO"), "file": __file__, "name": __name__,
    "path": sys.path, "helper": helper.VALUE, "mod": mod.VALUE,
    "session": os.getsid(0) == os.getpid(), "group": os.getpgid(0) == os.getpid(),
    "stdin": os.readlink("/proc/self/fd/0"),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "signals": {s: str(signal.getsignal(getattr(signal, s)))
                for s in ("SIGINT", "SIGPIPE", "SIGTERM", "SIGXFSZ", "SIGCHLD")},
    "flags": str(sys.flags), "write_through": sys.stdout.write_through,
    "cmdline": me.cmdline()[1:],
    "proc_env": sorted(k for k in me.environ() if k.startswith("FLOW_")),
    "main": sys.modules["__main__"].__dict__ is globals(),
    "parent": os.getppid(),
    "hash": hash("flow") if os.environ.get("PYTHONHASHSEED") else None,
}
with open(os.environ["OUT"], "w") as out:
    json.dump(info, out)
print("to stdout", flush=True)
print("to stderr", file=sys.stderr)
from node_sdk import Node
with Node():
    pass
"""

FILES = {
    "probe.py": PROBE,
    "helper.py": "VALUE = 'helper next to the script'\n",
    "pkg/__init__.py": "",
    "pkg/mod.py": "VALUE = 'a package next to the script'\n",
}


def _node(node_id: str, out: Path, extra: str = "", path: str = "probe.py") -> str:
    return f"""
  - id: {node_id}
    path: {path}
    args: one "two words"
    env: {{OUT: {out}, FOO: bar{extra}}}
"""


def _status(home: Path, name: str) -> str:
    done = flow("list", "--all", "--json", home=home)
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return str([r for r in runs if r["name"] == name][-1]["status"])


def _log(home: Path, node: str) -> list[dict[str, Any]]:
    logs = list(home.glob(f"runs/*/logs/{node}.log"))  # none for a node that wrote nothing
    return [json.loads(line) for log in logs for line in log.read_text().splitlines()]


def test_a_forked_node_sees_what_an_execd_one_sees(flow_home: Path, tmp_path: Path) -> None:
    names = ("forked", "execd", "env_exec", "interpreter", "seeded", "seeded_execd")
    outs = {n: tmp_path / f"{n}.json" for n in names}
    yaml = "nodes:" + _node("forked", outs["forked"])
    yaml += _node("execd", outs["execd"]) + "    spawn: exec\n"
    yaml += _node("env_exec", outs["env_exec"], ", FLOW_SPAWN: exec")
    # not `[flow's python, -u, x.py]`: another interpreter's command line
    yaml += _node("interpreter", outs["interpreter"], path=sys.executable).replace(
        "args: one", f"args: {tmp_path / 'probe.py'} one"
    )
    # another start-up setting: forked by a server of its own, which has it
    yaml += _node("seeded", outs["seeded"], ", PYTHONHASHSEED: '7'")
    yaml += _node("seeded_execd", outs["seeded_execd"], ", PYTHONHASHSEED: '7'")
    yaml += "    spawn: exec\n"
    yml = write_dataflow(tmp_path, yaml, FILES)
    flow_run_ok(flow_home, yml)
    got = {n: json.loads(p.read_text()) for n, p in outs.items()}
    for node in names:
        assert got[node].pop("forked") is (node in ("forked", "seeded")), node
    assert got["seeded"]["hash"] == got["seeded_execd"]["hash"]
    forked, execd = got["forked"], got["execd"]
    assert forked["argv"] == [str(tmp_path / "probe.py"), "one", "two words"]
    assert forked["name"] == "__main__"
    assert forked["main"] is True
    assert forked["file"] == str(tmp_path / "probe.py")
    assert forked["cwd"] == str(tmp_path)
    assert forked["path"][0] == str(tmp_path)
    assert forked["session"]
    assert forked["group"]
    assert forked["stdin"] == "/dev/null"
    assert {"FLOW_DATAFLOW", "FLOW_NODE_CONFIG"} <= set(forked["proc_env"])
    # /proc/PID/cmdline is one string, as setproctitle writes it: arguments with spaces
    # cannot be told apart there (only there: sys.argv is exact)
    assert " ".join(forked.pop("cmdline")) == " ".join(execd.pop("cmdline"))
    # everything else an exec'd node sees, the forked one sees the same (its parent too:
    # the `flow run` process whose keeper thread waits on both)
    assert forked == execd
    for node in ("forked", "execd"):
        lines = [(r["s"], r["m"]) for r in _log(flow_home, node)]
        assert ("stdout", "to stdout") in lines
        assert ("stderr", "to stderr") in lines


ENDINGS = {
    "three.py": "import sys\nsys.exit(3)\n",
    "boom.py": "def fail():\n    raise ValueError('boom')\n\nfail()\n",
    "term.py": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
    "interrupted.py": "raise KeyboardInterrupt\n",
    "missing_import.py": "import no_such_module_here\n",
}


def test_forked_endings_match_execd_ones(flow_home: Path, tmp_path: Path) -> None:
    yaml = "nodes:\n"
    for script in ENDINGS:
        stem = script.removesuffix(".py")
        for how in ("fork", "exec"):
            yaml += f"  - id: {stem}-{how}\n    path: {script}\n    connects: false\n"
            yaml += f"    spawn: {how}\n"
    yml = write_dataflow(tmp_path, yaml, ENDINGS)
    done = flow("run", str(yml), home=flow_home, timeout=120)
    assert done.returncode != 0
    for script in ENDINGS:
        stem = script.removesuffix(".py")
        endings = [
            line.split(None, 1)[1]
            for line in done.stdout.splitlines() + done.stderr.splitlines()
            if line.split(None, 1)[:1] in ([f"{stem}-fork"], [f"{stem}-exec"])
            and "|" not in line
        ]
        assert len(endings) == 2, (stem, endings, done.stdout)
        assert endings[0] == endings[1], (stem, endings)
        fork_err = [r["m"] for r in _log(flow_home, f"{stem}-fork") if r["s"] == "stderr"]
        exec_err = [r["m"] for r in _log(flow_home, f"{stem}-exec") if r["s"] == "stderr"]
        assert fork_err == exec_err, stem  # the same traceback: no frame of the server
    assert "exited 3" in done.stdout + done.stderr


RESTARTING = """\
import os, sys, time
started = time.time()
forked = "node_sdk.forkserver" in sys.modules
with open(os.environ["OUT"], "a") as out:
    out.write(f"start {started} {forked} {os.getpid()}\\n")
    out.flush()  # its own start counts: the fourth generation is the last
    runs = sum(1 for line in open(os.environ["OUT"]) if line.startswith("start"))
    if runs < 4:
        out.write(f"exit {time.time()}\\n")
        out.flush()
        os._exit(1)
"""


def test_a_crashed_forked_node_is_forked_again(daemon: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    yml = write_dataflow(tmp_path, f"""
        nodes:
          - id: crashy
            path: crashy.py
            connects: false
            restart_policy: on-failure
            restart_delay: 0
            env: {{OUT: {out}}}
        """, {"crashy.py": RESTARTING})  # fmt: skip
    done = flow("start", str(yml), "--name", "crashy", home=daemon)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: out.exists() and out.read_text().count("start") == 4, "four starts")
    lines = [line.split() for line in out.read_text().splitlines()]
    starts = [line for line in lines if line[0] == "start"]
    assert all(line[2] == "True" for line in starts), lines  # every generation forked
    assert len({line[3] for line in starts}) == 4  # four processes
    gaps = [float(b[1]) - float(a[1]) for a, b in itertools.pairwise(lines) if a[0] == "exit"]
    assert len(gaps) == 3
    print(f"restart latency (exit -> running again), ms: {[round(g * 1000, 1) for g in gaps]}")
    wait_for(lambda: _status(daemon, "crashy") == "succeeded", "the run's end")


LONG = """\
import os, subprocess, sys, time
forked = "node_sdk.forkserver" in sys.modules
pids = [os.getpid()]
if os.environ.get("ESCAPE"):  # a child that leaves the node's group
    pids.append(subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
with open(os.environ["OUT"], "w") as out:
    out.write(" ".join(map(str, [forked, *pids])))
time.sleep(300)
"""


def _fork_servers(home: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        env = process.info["environ"] or {}
        if "node_sdk.forkserver" in cmdline and env.get("FLOW_HOME") == str(home):
            found.append(process.pid)
    return found


def _zombies(parents: list[int]) -> list[int]:
    found = []
    for parent in parents:
        with contextlib.suppress(psutil.NoSuchProcess):  # collected or ended meanwhile
            for child in psutil.Process(parent).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        found.append(child.pid)
    return found


def _start_long(home: Path, tmp_path: Path, name: str, escape: str = "") -> list[int]:
    outs = [tmp_path / f"{name}{n}.txt" for n in range(2)]
    nodes = "".join(
        f"  - id: n{n}\n    path: long.py\n    connects: false\n"
        f"    env: {{OUT: {o}, ESCAPE: '{escape}'}}\n"
        for n, o in enumerate(outs)
    )
    yml = write_dataflow(tmp_path, "nodes:\n" + nodes, {"long.py": LONG})
    done = flow("start", str(yml), "--name", name, home=home)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: all(o.exists() and o.read_text() for o in outs), "both nodes up")
    pids = []
    for o in outs:
        forked, *started = o.read_text().split()
        assert forked == "True"
        pids += [int(pid) for pid in started]
    return pids


def test_no_forked_node_outlives_a_stop(daemon: Path, tmp_path: Path) -> None:
    pids = _start_long(daemon, tmp_path, "stopped", escape="1")
    assert _fork_servers(daemon)
    # the middle processes that forked the nodes are collected, not left as zombies
    wait_for(lambda: not _zombies(_fork_servers(daemon)),
             "the fork server's middle processes were never collected")  # fmt: skip
    done = flow("stop", "stopped", "--grace", "1s", home=daemon, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not wait_gone(pids, BOUND_S)
    wait_for(lambda: not _fork_servers(daemon), "the fork server's end with its keeper")


def test_no_forked_node_outlives_a_killed_keeper(daemon: Path, tmp_path: Path) -> None:
    pids = _start_long(daemon, tmp_path, "orphaned")
    keepers = [
        p.pid
        for p in psutil.process_iter(["cmdline", "environ"])
        if "daemon.keeper" in " ".join(p.info["cmdline"] or [])
        and (p.info["environ"] or {}).get("FLOW_HOME") == str(daemon)
    ]
    assert len(keepers) == 1
    os.kill(keepers[0], signal.SIGKILL)
    # the daemon kills the nodes' groups by their pids; the server dies with its keeper
    assert not wait_gone(pids, BOUND_S)
    wait_for(lambda: not _fork_servers(daemon), "the fork server's end with its keeper")
    wait_for(lambda: _status(daemon, "orphaned") == "failed", "the run failed")


NUMPY_NODE = """\
import json, os, sys
first = {"forked": "node_sdk.forkserver" in sys.modules, "numpy": "numpy" in sys.modules,
         "threads": len(os.listdir("/proc/self/task"))}
import numpy as np
import random
first["draws"] = [int(np.random.randint(1 << 30)), random.randrange(1 << 30)]
with open(os.environ["OUT"], "w") as out:
    json.dump(first, out)
"""


def test_a_numpy_script_gets_numpy_preloaded_and_its_own_random_state(
    flow_home: Path, tmp_path: Path
) -> None:
    outs = [tmp_path / f"n{n}.json" for n in range(2)]
    nodes = "".join(
        f"  - id: n{n}\n    path: uses_numpy.py\n    connects: false\n    env: {{OUT: {o}}}\n"
        for n, o in enumerate(outs)
    )
    yml = write_dataflow(tmp_path, "nodes:\n" + nodes, {"uses_numpy.py": NUMPY_NODE})
    flow_run_ok(flow_home, yml)
    got = [json.loads(o.read_text()) for o in outs]
    for node in got:
        assert node["forked"] is True
        assert node["numpy"] is True  # the server imported it before forking
        assert node["threads"] == 1  # and no thread of numpy's came along
    assert got[0]["draws"][0] != got[1]["draws"][0]  # numpy's generator: seeded again
    assert got[0]["draws"][1] != got[1]["draws"][1]  # Python's: seeded again


LEAVES_OPEN = """\
import atexit, gzip, os, sys, threading, time
out = os.environ["OUT"]
text = open(out + ".txt", "w")  # never closed: its buffered line must reach the file
text.write("buffered line\\n")
packed = gzip.open(out + ".gz", "wt")  # never closed: the end writes its trailer
packed.write("packed line\\n")
atexit.register(lambda: open(out + ".atexit", "w").write("atexit ran"))
def late():
    time.sleep(0.3)  # after the script's end: the end waits for this thread
    with open(out + ".thread", "w") as fh:
        fh.write("thread ran")
threading.Thread(target=late).start()
sys.exit("a farewell on stderr")
"""


def test_a_forked_node_ends_as_an_execd_one(flow_home: Path, tmp_path: Path) -> None:
    """A forked node skips the interpreter's freeing of every module (its cost is mostly
    the pages it shares with the server, copied); what a script sees of its end stays:
    threads waited for, atexit handlers, open files closed, its exit status."""
    import gzip

    outs = {how: tmp_path / how for how in ("fork", "exec")}
    yaml = "nodes:\n" + "".join(
        f"  - id: {how}\n    path: leaves_open.py\n    connects: false\n    spawn: {how}\n"
        f"    env: {{OUT: {out}}}\n"
        for how, out in outs.items()
    )
    yml = write_dataflow(tmp_path, yaml, {"leaves_open.py": LEAVES_OPEN})
    done = flow("run", str(yml), home=flow_home, timeout=120)
    assert done.returncode != 0  # both exit 1 (a SystemExit with a message)
    for how, out in outs.items():
        assert Path(f"{out}.txt").read_text() == "buffered line\n", how
        with gzip.open(f"{out}.gz", "rt") as packed:
            assert packed.read() == "packed line\n", how
        assert Path(f"{out}.atexit").read_text() == "atexit ran", how
        assert Path(f"{out}.thread").read_text() == "thread ran", how
        errors = [r["m"] for r in _log(flow_home, how) if r["s"] == "stderr"]
        assert errors == ["a farewell on stderr"], (how, errors)
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    endings = [line.split(None, 1)[1] for line in lines
               if line.split(None, 1)[:1] in (["fork"], ["exec"]) and "|" not in line]  # fmt: skip
    assert len(endings) == 2, endings
    assert endings[0] == endings[1]
