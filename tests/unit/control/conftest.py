"""A control server wired to handlers the test chooses, over a `FakeOwner` (tests/fakes.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio
from fakes import FakeOwner

from daemon.control.server import ControlServer


@attrs.define(eq=False)
class Harness:
    server: ControlServer
    owner: FakeOwner

    def request(self, type_: str, body: Any, request_id: str = "r", peer: bytes = b"peer") -> None:
        frame = json.dumps({"v": 1, "id": request_id, "type": type_, "body": body}).encode()
        self.server.on_message([peer, b"", frame])


MakeHarness = Callable[[dict[type[Any], Any]], Harness]


@pytest.fixture
async def make_harness(make_owner: Callable[[], FakeOwner]) -> AsyncIterator[MakeHarness]:
    async with trio.open_nursery() as nursery:

        def make(handlers: dict[type[Any], Any]) -> Harness:
            owner = make_owner()
            server = ControlServer(
                owner=owner,
                runtime=object(),  # type: ignore[arg-type]
                handlers=handlers,
                nursery=nursery,
            )
            return Harness(server=server, owner=owner)

        yield make
        nursery.cancel_scope.cancel()
