"""The coordinator's side of `flow topic echo|hz` and `flow top` for nodes on members.

An observer of a remote node's output: the member opens an observer socket on its machine
(daemon/cluster/host_watch.py) and answers its endpoint, which the coordinator wires the
node to; the samples the member relays are pushed, one frame each, into the CLI's own
observer socket here, so the CLI reads them as from a local node. That push never waits: a
CLI that reads slower than the samples come loses the newest ones beyond OBSERVER_HWM, as
a local observer's full queue does. `usage` asks a member for the CPU and memory of a
run's nodes there, for `flow top`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from typing import Final

import attrs
import trio
import zmq

from daemon.cluster.samples import unpack_batch
from daemon.model.cluster_messages import WATCH_KINDS, Carry
from daemon.model.errors import BadRequest

log = logging.getLogger(__name__)

OBSERVE_ANSWER_S: Final = 3.0
USAGE_ANSWER_S: Final = 1.5  # past the member's own sampling time
OBSERVER_HWM: Final = 100
MAX_USAGE_LINES: Final = 1000
_USAGE_LINE: Final = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}) (-|\d{1,6}\.\d) (-|\d{1,15})")

Usage = dict[str, tuple[float | None, int | None]]  # node -> (cpu percent, rss bytes)
_NOT_SENT: Final = "\0not sent"  # compared by identity: never a member's answer


@attrs.define(eq=False)
class _Sink:
    """Where one lease's samples go: a PUSH to the CLI's observer socket."""

    run_id: str
    machine: str
    socket: zmq.Socket[bytes]
    pushed: int = 0
    dropped: int = 0


@attrs.define(eq=False)
class RemoteWatch:
    """Observers and usage of nodes on members, over `send_carry` (the placer's)."""

    send_carry: Callable[[str, Carry], bool]
    context: zmq.Context[zmq.Socket[bytes]]
    _sinks: dict[str, _Sink] = attrs.field(factory=dict)  # by lease
    _answers: dict[tuple[str, str, str], trio.MemorySendChannel[str]] = attrs.field(
        factory=dict
    )  # (kind, machine, ident) -> the task waiting for that answer

    def on_carry(self, machine: str, carry: Carry) -> bool:
        """The link's hook: True when `carry` was one of ours (then handled here)."""
        if carry.kind not in WATCH_KINDS:
            return False
        if carry.kind == "samples":
            self._push(machine, carry)
        else:
            waiting = self._answers.get((carry.kind, machine, carry.ident))
            if waiting is not None:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    waiting.send_nowait(carry.body)
        return True

    async def _ask(self, machine: str, carry: Carry, within_s: float) -> str | None:
        """The answer to `carry` from `machine`; None past `within_s`; _NOT_SENT when the
        machine is not connected."""
        key = (carry.kind, machine, carry.ident)
        send, receive = trio.open_memory_channel[str](1)
        self._answers[key] = send
        try:
            if not self.send_carry(machine, carry):
                return _NOT_SENT
            with trio.move_on_after(within_s):
                return await receive.receive()
            return None
        finally:
            del self._answers[key]

    # ------------------------------------------------------------------ observers

    async def observe(self, run_id: str, machine: str, lease: str, cli_endpoint: str) -> str:
        """Open an observer on `machine`: its endpoint there, to wire the node to; its
        samples go to `cli_endpoint`. BadRequest, in one line, when it cannot be."""
        answer = await self._ask(machine, Carry(run_id, "observe", "", lease), OBSERVE_ANSWER_S)
        if answer is None:
            raise BadRequest(f"machine {machine} did not answer within {OBSERVE_ANSWER_S:g} s "
                             "(flow cluster status)")  # fmt: skip
        if answer is _NOT_SENT:
            raise BadRequest(f"machine {machine} is not connected (flow cluster status)")
        if not answer.startswith("ipc://"):
            raise BadRequest(f"machine {machine} refused an observer (its limit is 16 open)")
        sock = self.context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, OBSERVER_HWM)
        sock.connect(cli_endpoint)
        self._sinks[lease] = _Sink(run_id, machine, sock)
        return answer

    def renew(self, lease: str) -> None:
        """The CLI renewed its lease: ask the member again, or its observer closes."""
        sink = self._sinks.get(lease)
        if sink is not None:
            self.send_carry(sink.machine, Carry(sink.run_id, "observe", "", lease))

    def close(self, lease: str) -> None:
        sink = self._sinks.pop(lease, None)
        if sink is None:
            return
        sink.socket.close(linger=0)
        self.send_carry(sink.machine, Carry(sink.run_id, "unobserve", "", lease))
        log.info("observer %s on machine %s closed: %d samples pushed, %d dropped here",
                 lease, sink.machine, sink.pushed, sink.dropped)  # fmt: skip

    def _push(self, machine: str, carry: Carry) -> None:
        sink = self._sinks.get(carry.ident)
        if sink is None or (sink.machine, sink.run_id) != (machine, carry.run):
            return
        for sample in unpack_batch(carry.body):
            try:
                sink.socket.send(sample, zmq.NOBLOCK)
                sink.pushed += 1
            except zmq.Again:  # the CLI reads slower than this: as a local observer's queue
                sink.dropped += 1

    # ------------------------------------------------------------------ usage

    async def usage(self, run_id: str, machine: str, sample_s: float) -> Usage:
        """CPU (over `sample_s`, or since the last ask) and memory of the run's nodes on
        `machine`, measured there; {} when it does not answer in time."""
        ask = Carry(run_id, "usage", str(round(sample_s * 1000)), secrets.token_hex(8))
        answer = await self._ask(machine, ask, sample_s + USAGE_ANSWER_S)
        usage: Usage = {}
        for line in (answer or "").splitlines()[:MAX_USAGE_LINES]:  # _NOT_SENT matches none
            match = _USAGE_LINE.fullmatch(line)
            if match is not None:
                node, cpu, rss = match.groups()
                usage[node] = (None if cpu == "-" else float(cpu),
                               None if rss == "-" else int(rss))  # fmt: skip
        return usage
