"""Machines as network namespaces (tests/netns.py): a coordinator `a` and members `b`, `c`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

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


# a grace a coordinator restarted on a loaded machine comes back well within: `flow up`
# (two Python starts, recovery) has taken over 5 s here with six test runs sharing 2 cores
PATIENT_GRACE_S = 10.0


@pytest.fixture
def cluster(hosts: dict[str, Machine]) -> dict[str, Machine]:
    """`a` coordinates on its address; `b` has joined with a token and is connected."""
    _coordinate_and_join(hosts["a"], hosts["b"])
    return hosts


@pytest.fixture
def patient_cluster(hosts: dict[str, Machine]) -> dict[str, Machine]:
    """`cluster`, with a cluster_grace of PATIENT_GRACE_S on `a` and `b`."""
    patient = {name: replace(m, grace_s=PATIENT_GRACE_S) for name, m in hosts.items()}
    _coordinate_and_join(patient["a"], patient["b"])
    return patient


def _coordinate_and_join(a: Machine, b: Machine) -> None:
    up = a.flow("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stdout + up.stderr
    token = a.flow("cluster", "token")
    assert token.returncode == 0, token.stderr
    joined = b.flow("up", "--machine", "b", "--join", token.stdout.strip())
    assert joined.returncode == 0, joined.stdout + joined.stderr
