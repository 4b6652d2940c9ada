"""Fixtures of the SDK's process tests: a socket folder, the fake daemon's node channel
(`FakeNodeRouter`, pumped by the test), node processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNodeRouter


@pytest.fixture
def sockdir(flow_home: Path) -> Path:
    path = flow_home / "s"
    path.mkdir()
    return path


@pytest.fixture
def fake_daemon(sockdir: Path) -> Iterator[FakeNodeRouter]:
    daemon = FakeNodeRouter(f"ipc://{sockdir}/nodes")
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start node processes; every one is killed and reaped when the test ends."""
    children: list[subprocess.Popen[str]] = []

    def start(
        name: str, source: str, config: dict[str, Any] | None = None,
        within: list[str] | None = None, **env: str,
    ) -> subprocess.Popen[str]:  # fmt: skip
        """`config` becomes FLOW_NODE_CONFIG; without one (a dynamic node) none is set.
        `within` prefixes the command (`Machine.argv` of tests/netns.py: another machine)."""
        script = tmp_path / f"{name}.py"
        script.write_text(textwrap.dedent(source))
        full = {k: v for k, v in os.environ.items() if k != "FLOW_NODE_CONFIG"}
        if config is not None:
            full["FLOW_NODE_CONFIG"] = json.dumps(config)
        full.update(env)
        command = [sys.executable, "-u", str(script)]
        child = subprocess.Popen(
            [*within, *command] if within else command,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.communicate()
