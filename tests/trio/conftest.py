"""Fixtures of the in-process trio tests; the fakes themselves live in run_fakes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from run_fakes import FlakyStore, RunMaker


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlakyStore]:
    opened = FlakyStore.open(tmp_path / "state.db")
    assert isinstance(opened, FlakyStore)
    yield opened
    opened.close()


@pytest.fixture
def make_run(
    tmp_path: Path, store: FlakyStore, zmq_context: zmq.Context[zmq.Socket[bytes]]
) -> RunMaker:
    return RunMaker(tmp_path, store, zmq_context)
