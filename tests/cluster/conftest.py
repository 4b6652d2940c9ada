"""Machines as network namespaces (tests/netns.py): a coordinator `a` and members `b`, `c`."""

from __future__ import annotations

from collections.abc import Iterator

import netns
import pytest
from netns import PORT, Machine

_WHY_NOT = netns.skip_reason()


@pytest.fixture
def hosts() -> Iterator[dict[str, Machine]]:
    """Three machines on one bridge, nothing started on them yet."""
    if _WHY_NOT is not None:
        pytest.skip(_WHY_NOT)
    with netns.hosts(("a", "b", "c")) as made:
        yield made


@pytest.fixture
def cluster(hosts: dict[str, Machine]) -> dict[str, Machine]:
    """`a` coordinates on its address; `b` has joined with a token and is connected."""
    a, b = hosts["a"], hosts["b"]
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stdout + up.stderr
    token = a.flow("cluster", "token")
    assert token.returncode == 0, token.stderr
    joined = b.flow("up", "--machine", "b", "--join", token.stdout.strip())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    return hosts
