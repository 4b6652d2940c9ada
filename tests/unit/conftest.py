"""Fixtures of the unit tests: the shared fakes (tests/fakes.py), each closed after its test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from fakes import Answer, FakeControlDaemon, FakeNodeRouter, FakeOwner, no_answer


@pytest.fixture
def make_owner() -> Iterator[Callable[[], FakeOwner]]:
    """Makes `FakeOwner`s, each over its own real socket that nothing serves."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def make() -> FakeOwner:
        sockets.append(context.socket(zmq.DEALER))
        return FakeOwner(sockets[-1])

    yield make
    for sock in sockets:
        sock.close(linger=0)
    context.term()


@pytest.fixture
def fake_control(flow_home: Path) -> Iterator[FakeControlDaemon]:
    """The control endpoint of this test's FLOW_HOME, answering with canned replies."""
    daemon = FakeControlDaemon(flow_home)
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def node_router(flow_home: Path) -> Iterator[Callable[..., FakeNodeRouter]]:
    """Makes the node channel ROUTER of this test's FLOW_HOME, served by a thread."""
    made: list[FakeNodeRouter] = []

    def make(answer: Answer = no_answer) -> FakeNodeRouter:
        router = FakeNodeRouter.for_home(flow_home, answer)
        made.append(router)
        router.serve_in_thread()
        return router

    try:
        yield make
    finally:
        for router in made:
            router.close()
