"""The control server in process: each request answered or dropped with one log line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from daemon.control import server as server_module
from daemon.model import replies as rp
from daemon.model import requests as rq
from daemon.model.errors import BrokenInvariant, UnknownRun
from daemon.model.parts import split_request


def _control_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == server_module.__name__]


async def test_each_message_gets_one_line(
    make_harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=server_module.__name__)

    async def ping(rt: object, req: rq.Ping) -> rp.PingReply:
        return rp.PingReply(pid=1, version="v", home="/h")

    async def stop(rt: object, req: rq.Stop) -> rp.RunReply:
        raise UnknownRun(req.run)

    async def status(rt: object, req: rq.Status) -> rp.StatusReply:
        raise ZeroDivisionError("a bug in a handler")

    async def top(rt: object, req: rq.Top) -> object:
        return {1, 2}  # not serializable: a bug, answered like any other

    h = make_harness({rq.Ping: ping, rq.Stop: stop, rq.Status: status, rq.Top: top})
    h.server.on_message([b"only one frame"])
    h.server.on_message([b"peer", b"", b"[" * 2200])
    h.request("ping", {}, "a")
    h.request("stop", {"run": "nope"}, "b")
    h.request("stop", {"run": [1]}, "c")
    h.request("status", {}, "d")
    h.request("top", {}, "e")
    await trio.testing.wait_all_tasks_blocked()
    replies = {r["id"]: r for r in h.owner.replies()}
    assert replies["a"]["body"] == {"pid": 1, "version": "v", "home": "/h", "stopping": False}
    assert replies["b"]["error"] == {
        "kind": "UnknownRun",
        "message": "no run with ID or name 'nope'",
    }
    assert replies["c"]["error"]["message"] == "field 'run': expected a string"
    assert replies["d"]["error"]["message"].startswith("internal error: ZeroDivisionError")
    assert replies["e"]["error"]["message"].startswith("internal error: TypeError")
    assert len(h.owner.outgoing) == 5
    lines = _control_lines(caplog)
    assert len(lines) == 7, lines  # two drops, five answers
    assert sum("dropped" in line for line in lines) == 2
    assert h.server.in_flight == 0


async def test_fatal_errors_escape(make_harness: Any) -> None:
    async def inject(rt: object, req: rq.InjectFatal) -> rp.Empty:
        raise BrokenInvariant("broken")

    h = make_harness({rq.InjectFatal: inject})
    h.server.hooks = True

    async def serve_one() -> None:
        async with trio.open_nursery() as nursery:
            h.server.nursery = nursery
            h.request("_inject_fatal", {})

    with pytest.raises(BaseExceptionGroup) as info:
        await serve_one()
    assert info.group_contains(BrokenInvariant)
    assert h.owner.outgoing == []  # not answered: the daemon is going down


async def test_in_flight_bounds_answer_busy_and_waits_end(
    make_harness: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async def wait(rt: object, req: rq.Wait) -> rp.WaitReply:
        await trio.sleep(req.timeout)
        return rp.WaitReply(run={"id": req.run}, done=True)

    async def ping(rt: object, req: rq.Ping) -> rp.PingReply:
        return rp.PingReply(pid=1, version="v", home="/h")

    h = make_harness({rq.Wait: wait, rq.Ping: ping})
    per_client = server_module.MAX_IN_FLIGHT_PER_CLIENT
    # one connection holding its share: its next request is busy, another's ping is not
    for i in range(per_client + 1):
        h.request("wait", {"run": "r", "timeout": 30}, f"hog{i}", peer=b"hog")
    h.request("ping", {}, "p", peer=b"polite")
    await trio.testing.wait_all_tasks_blocked()
    replies = {r["id"]: r for r in h.owner.replies()}
    assert set(replies) == {f"hog{per_client}", "p"}
    assert "from this connection" in replies[f"hog{per_client}"]["error"]["message"]
    assert replies["p"]["ok"] is True
    # many connections together: the whole is bounded too
    total = server_module.MAX_IN_FLIGHT
    for i in range(total - per_client + 1):
        h.request("wait", {"run": "r", "timeout": 30}, f"w{i}", peer=f"c{i}".encode())
    await trio.testing.wait_all_tasks_blocked()
    last = h.owner.replies()[-1]
    assert last["id"] == f"w{total - per_client}"
    assert last["error"]["message"] == f"daemon busy: {total} requests in flight"
    await trio.sleep(31)
    assert len(h.owner.outgoing) == 3 + total
    assert h.server.in_flight == 0
    assert h.server._per_client == {}


async def test_parts_are_joined_and_bytes_in_flight_are_bounded(
    make_harness: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async def start(rt: object, req: rq.Start) -> rp.RunReply:
        await trio.sleep(30)  # held in flight with its text
        return rp.RunReply(run={"text": len(req.text)})

    h = make_harness({rq.Start: start})
    text = "# a large dataflow\n" * 45_000  # ~850 KB: 27 frames
    body = {"path": "/d.yml", "text": text}
    frames = [
        json.dumps({"v": 1, "id": f"s{i:02}", "type": "start", "body": body}).encode()
        for i in range(40)
    ]
    budget = server_module.MAX_IN_FLIGHT_BYTES
    held = budget // len(frames[0])
    for i, frame in enumerate(frames[: held + 1]):
        peer = f"c{i}".encode()
        for message in split_request(frame):
            h.server.on_message([peer, b"", *message])
    await trio.testing.wait_all_tasks_blocked()
    assert h.server.parts.held == 0  # every request joined, nothing left in parts
    assert h.server.in_flight == held
    [busy] = h.owner.replies()
    assert busy["id"] == f"s{held:02}"
    assert busy["error"]["message"] == f"daemon busy: {budget >> 20} MiB of requests in flight"
    await trio.sleep(31)
    answers = h.owner.replies()[1:]
    assert [a["body"]["run"]["text"] for a in answers] == [len(text)] * held
    assert h.server.in_flight_bytes == 0
