"""A member machine opens a run's keeper only when the coordinator attaches to it or spawns
a node there (daemon/cluster/host.py): a late word for a run it no longer hosts (an unwire
or a signal after the run's quit) is dropped, never a keeper left with nothing to serve."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from daemon.cluster.host import Host
from daemon.model import keeper_messages as km
from daemon.model.cluster_messages import Carry

RUN = "0190aaaa-bbbb-7ccc-8ddd-000000000001"


LATE = [km.UnwireStdout("talker", "tcp://10.0.0.1:7000"), km.Signal("talker", 15), km.Ping(),
        km.Release("talker", 1)]  # fmt: skip


@pytest.mark.parametrize("late", LATE, ids=lambda m: type(m).__name__)
async def test_a_late_word_for_a_run_not_hosted_starts_no_keeper(late: Any) -> None:
    opened: list[str] = []

    class Refusing(Host):
        async def _open(self, nursery: trio.Nursery, run_id: str) -> Any:
            opened.append(run_id)
            raise AssertionError("a keeper was started for a run this machine does not host")

    sent: list[Carry] = []
    host = Refusing(rt=None, keys=None,  # type: ignore[arg-type]  # neither is read here
                    link_send=lambda c: sent.append(c) is None, connected=lambda: True)
    async with trio.open_nursery() as nursery:
        await host._handle(nursery, Carry(RUN, "keeper", km.encode(late).decode()))
    assert opened == []
    assert host.runs == {}
    assert sent == []
