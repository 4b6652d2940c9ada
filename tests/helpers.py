"""Helpers for tests of real processes: drive the `flow` CLI as a user would, write
dataflows, end a node process and read its JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BOUND_S = 15.0  # a safety bound on every wait, never an assertion about speed
REPO = Path(__file__).resolve().parent.parent
NODES = REPO / "tests" / "nodes"  # the test node scripts


# tests/nodes/kinds.py's outputs
KINDS = ("text", "raw", "array", "table", "big", "empty", "point")


def kinds_graph(count: int, queue_size: int) -> str:
    """`src` (tests/nodes/kinds.py) sends `count` messages of every payload kind, one kind
    per output, to `sink` (kindsink.py), each input `queue_size` deep."""
    inputs = "".join(f"      {k}: {{source: src/{k}, queue_size: {queue_size}}}\n" for k in KINDS)
    return f"""
nodes:
  - id: src
    path: {NODES}/kinds.py
    inputs:
      tick: flow/timer/millis/30
    outputs: [{", ".join(KINDS)}]
    env:
      COUNT: "{count}"
  - id: sink
    path: {NODES}/kindsink.py
    inputs:
{inputs}"""


def stream_graph(tick_ms: int) -> str:
    """The test stream: `counter` counts timer ticks, `sink` checks their seqs (lossless)."""
    return f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/{tick_ms}
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: counter/count, queue_size: 1000}}  # a starved CPU must not drop
"""


def start_stream(home: Path, tmp_path: Path, name: str, tick_ms: int = 5) -> None:
    """Start the test stream detached on the test's daemon, as run `name`."""
    yml = tmp_path / f"{name}.yml"
    yml.write_text(stream_graph(tick_ms))
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr


def flow_env(home: Path, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a `flow` command of this test runs with."""
    env = dict(os.environ)
    env["FLOW_HOME"] = str(home)
    env.pop("XDG_RUNTIME_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    # the repo on the path, so `python -m cli` works with or without an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if env_extra:
        env.update(env_extra)
    return env


def flow(
    *args: str,
    home: Path,
    timeout: float = 60,
    input: str | None = None,
    env_extra: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cli ARGS` with the test's FLOW_HOME; never on the interactive terminal."""
    argv = [sys.executable, "-m", "cli", *args]
    return run_captured(argv, flow_env(home, env_extra), input=input, timeout=timeout, cwd=cwd)


def run_captured(
    argv: list[str],
    env: dict[str, str],
    *,
    input: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """A command's outputs as text; its stdin is `input`, or nothing (never the terminal)."""
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(check: Callable[[], bool], what: str) -> float:
    """Seconds until `check` holds; fails after BOUND_S (a safety bound, not a speed test)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < BOUND_S, f"not within {BOUND_S} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


# a dataflow of one process node that prints `line N` every 50 ms, sent as `talker/lines`
TALKER = """nodes:
  - id: talker
    path: sh
    args: -c 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.05; done'
    outputs: [lines]
    send_stdout_as: lines
"""


def write_dataflow(tmp_path: Path, yaml_text: str, nodes: dict[str, str]) -> Path:
    """Write `dataflow.yml` and node scripts (name -> source) under tmp_path; return the YAML."""
    for name, source in nodes.items():
        script = tmp_path / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(textwrap.dedent(source))
        script.chmod(0o755)
    yml = tmp_path / "dataflow.yml"
    yml.write_text(textwrap.dedent(yaml_text))
    return yml


def daemon_up(home: Path, timeout: float = 30) -> None:
    """Start the test's daemon with `flow up`; fail loudly with its output if it does not."""
    done = flow("up", home=home, timeout=timeout)
    assert done.returncode == 0, f"flow up exited {done.returncode}\n{done.stdout}{done.stderr}"
    # waiting for the new daemon to answer is the normal course: no line per attempt
    assert "retry" not in done.stderr, done.stderr


def daemon_down(home: Path, timeout: float = 60) -> None:
    """Stop the test's daemon with `flow down --force` (a no-op exit is fine if none runs)."""
    done = flow("down", "--force", home=home, timeout=timeout)
    assert done.returncode in (0, 3), (
        f"flow down exited {done.returncode}\n{done.stdout}{done.stderr}"
    )


def finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for a node process (bounded); it must exit 0. Its stdout and stderr."""
    out, err = child.communicate(timeout=BOUND_S)
    assert child.returncode == 0, f"exit {child.returncode}\n{out}\n{err}"
    return out, err


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a file a test node wrote."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def flow_run_ok(home: Path, yml: Path, *options: str, timeout: float = 120) -> str:
    """`flow run [OPTIONS] YML` to a success exit; its stdout and stderr together."""
    done = flow("run", *options, str(yml), home=home, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def write_module_fan_out(folder: Path, per_level: int = 20, levels: int = 8) -> Path:
    """A dataflow whose module nodes fan out: `per_level` module nodes a file, `levels` files
    deep, a plain node at the bottom (per_level**levels nodes once expanded, from a few
    small files); returns the top file."""
    def module_nodes(target: str) -> str:
        return "".join(f"  - id: m{i}\n    module: {target}\n" for i in range(per_level))

    top = folder / "dataflow.yml"
    top.write_text("nodes:\n" + module_nodes("l1.yml"))
    for level in range(1, levels):
        (folder / f"l{level}.yml").write_text(
            f"module:\n  name: l{level}\nnodes:\n" + module_nodes(f"l{level + 1}.yml")
        )
    (folder / f"l{levels}.yml").write_text(
        f"module:\n  name: l{levels}\nnodes:\n  - id: x\n    path: x.py\n"
    )
    return top


def pty_ended(child: Any) -> tuple[int | None, str]:
    """Wait (bounded by its timeout) for a pexpect child to exit: its exit status and what
    it printed since the last match; killed if it is still there after all."""
    import pexpect

    try:
        child.expect(pexpect.EOF)
        text = str(child.before or "")
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
    return child.exitstatus, text


def run_segments(run_id: str) -> list[str]:
    """The names of a run's shared-memory segments in /dev/shm now."""
    from node_sdk import shm

    prefix = shm.run_prefix(run_id)
    return [name for name in os.listdir(shm.SHM_DIR) if name.startswith(prefix)]
