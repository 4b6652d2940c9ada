"""Shared fakes for in-process tests of the control server: a socket owner that records
what it would send, and a server wired to handlers the test chooses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio

from daemon.control.server import ControlServer


@attrs.define(eq=False)
class FakeOwner:
    """Stands in for `SocketOwner`: keeps every outgoing message instead of sending it."""

    sent: list[list[bytes]] = attrs.field(factory=list)

    def send(self, frames: list[bytes]) -> None:
        self.sent.append(frames)

    def replies(self) -> list[dict[str, Any]]:
        return [json.loads(frames[-1]) for frames in self.sent]


@attrs.define(eq=False)
class Harness:
    server: ControlServer
    owner: FakeOwner

    def request(self, type_: str, body: Any, request_id: str = "r", peer: bytes = b"peer") -> None:
        frame = json.dumps({"v": 1, "id": request_id, "type": type_, "body": body}).encode()
        self.server.on_message([peer, b"", frame])


MakeHarness = Callable[[dict[type[Any], Any]], Harness]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    async with trio.open_nursery() as nursery:

        def make(handlers: dict[type[Any], Any]) -> Harness:
            owner = FakeOwner()
            server = ControlServer(
                owner=owner,  # type: ignore[arg-type]
                runtime=object(),  # type: ignore[arg-type]
                handlers=handlers,
                nursery=nursery,
            )
            return Harness(server=server, owner=owner)

        yield make
        nursery.cancel_scope.cancel()
