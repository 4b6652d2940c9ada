"""Running a dataflow's CLI with a time bound that leaves nothing behind when it is hit."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import psutil  # flow's own dependency: the bench runs in flow's environment

STOP_GRACE_S = 15.0  # a timed-out run's CLI gets this long to stop its dataflow


def run_bounded(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float,
    grace: float = STOP_GRACE_S,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run a CLI to its end, at most `timeout`; past it, stop the CLI (SIGTERM: `flow run`
    and `dora run` stop their dataflow; SIGKILL after `grace`), then kill whatever it
    started that is still there, and raise TimeoutExpired. A run left behind would load
    every later row (a 200-node dora chain that timed out kept both cores busy for
    minutes)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        proc.terminate()
        try:
            proc.wait(timeout=grace)  # not communicate: its children may hold the pipes
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(tree, timeout=grace)
        proc.communicate()  # every writer is gone: the pipes end
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
