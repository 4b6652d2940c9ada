"""A node's `cpu_affinity` holds from its first instruction. A forked node pins itself,
before any of its code runs: here no keeper pins it at all, the fork request alone must.
An exec'd one inherits the mask of the keeper thread that starts it (daemon/keeper/
affinity.py); pinned by its pid once started, it ran on every CPU meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

# run apart (a subreaper, as the keeper is: the forked node must be its child)
KEEPER = """
import json, os, sys
from daemon.keeper.forking import ForkServer
from daemon.keeper.reaper import become_subreaper

assert become_subreaper()
script, cpus = sys.argv[1], json.loads(sys.argv[2])
server = ForkServer.start(dict(os.environ))
try:
    number = server.send([sys.executable, "-u", script], dict(os.environ), "/", False, cpus)
    node = server.collect(number)
    assert not isinstance(node, str), node
    print(node.stdout.read().decode(), end="")
    assert node.wait() == 0
finally:
    server.process.kill()
    server.process.wait()
"""

PROBE = """
import os, threading
seen = []
thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
thread.start()
thread.join()
print(sorted(os.sched_getaffinity(0)), seen[0])
"""


def test_the_fork_request_pins_the_node_and_its_threads(tmp_path: Path) -> None:
    here = sorted(os.sched_getaffinity(0))
    if len(here) < 2:
        pytest.skip("needs two CPUs to tell pinned from not")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    for cpus, expected in (([here[-1]], [here[-1]]), ([], here)):
        done = subprocess.run(
            [sys.executable, "-c", KEEPER, str(probe), json.dumps(cpus)], cwd=REPO,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{expected} {expected}", (cpus, done.stdout)


def test_an_execd_node_starts_on_its_cpus_and_the_keeper_keeps_its_own() -> None:
    from daemon.keeper.children import start_node

    here = sorted(os.sched_getaffinity(0))
    if len(here) < 2:
        pytest.skip("needs two CPUs to tell pinned from not")
    env = {"PATH": os.environ["PATH"]}
    # not Python: its first instructions read the mask, long before a pin by pid could come
    node = start_node(["cat", "/proc/self/status"], env, "/", False, None, [here[-1]])
    assert node.stdout is not None
    assert node.stderr is not None
    with node.stdout, node.stderr:
        status = node.stdout.read().decode()
    assert node.wait() == 0
    assert f"Cpus_allowed_list:\t{here[-1]}\n" in status, status
    assert sorted(os.sched_getaffinity(0)) == here  # the starting thread got its mask back
