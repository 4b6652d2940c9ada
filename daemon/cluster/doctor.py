"""The coordinator's `flow doctor --cluster`: probe links between machines, one at a time.

For each direction the receiving machine binds a probe receiver (a port reserved there, on
the address a node's input would bind, admitting the sending machine's key only) and the
sending machine sends it 8 B twice and the large message, as a node's edge would. A
member does its part when asked over the cluster link (daemon/cluster/probe_agent.py); the
coordinator does its own here. Links are probed one after another, so the figures are not
shared bandwidth; every wait is bounded, and a machine that did not answer a request fails
its other links at once instead of being waited for again.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Final

import attrs
import trio

from daemon.cluster.coordinator import CONNECTED, Coordinator
from daemon.cluster.placing import refuse_unreachable
from daemon.cluster.probe import Measured, ProbeFailed
from daemon.cluster.probe_agent import LocalProber
from daemon.model import cluster_messages as msg
from daemon.model import replies as rp
from daemon.model.cluster_probe import PlannedLink, answers_within

LISTEN_ANSWER_S: Final = 5.0  # a member's answer to "bind a receiver"


class _Silent(Exception):
    """A machine did not answer a probe request within its bound."""

    def __init__(self, machine: str, within: float) -> None:
        super().__init__(f"machine {machine} did not answer a probe request within "
                         f"{within:g} s (lost, or its link down)")  # fmt: skip
        self.machine = machine


@attrs.define(eq=False)
class LinkDoctor:
    """One `flow doctor --cluster` request's probes."""

    coordinator: Coordinator
    home: Path
    silent: dict[str, str] = attrs.field(factory=dict)  # machine -> why it is not asked again

    @property
    def local(self) -> LocalProber:
        c = self.coordinator
        return LocalProber(self.home, c.keys, c.timing)

    async def probe(self, links: list[PlannedLink], large: int,
                    timeout_s: float) -> list[rp.LinkRow]:  # fmt: skip
        if any(not link.local for link in links):
            self._refuse_unprobeable()
        rows = []
        for link in links:
            if link.local:
                rows.append(rp.LinkRow(link.source, link.target, list(link.edges), None, None,
                                       None))  # fmt: skip
                continue
            try:
                measured = await self._probe_link(link, large, timeout_s)
            except ProbeFailed as exc:
                rows.append(self._failed(link, str(exc), exc.small_s))
            except _Silent as exc:
                self.silent[exc.machine] = str(exc)
                rows.append(self._failed(link, str(exc)))
            else:
                rows.append(rp.LinkRow(link.source, link.target, list(link.edges),
                                       measured.small_s, measured.large_s, None))  # fmt: skip
        return rows

    def _refuse_unprobeable(self) -> None:
        """The refusals of a placed start (daemon/cluster/placing.py), for the same causes."""
        refuse_unreachable(self.coordinator, "links to other machines")

    @staticmethod
    def _failed(link: PlannedLink, error: str, small_s: float | None = None) -> rp.LinkRow:
        return rp.LinkRow(link.source, link.target, list(link.edges), small_s, None, error)

    def _place(self, machine: str) -> tuple[str, str]:
        """A machine's address (where its nodes' inputs bind) and public key; ProbeFailed
        when it is not connected or did not answer a request of this probe."""
        c = self.coordinator
        if machine == c.name:
            return c.listen.host, c.keys.public
        if machine in self.silent:
            raise ProbeFailed(self.silent[machine])
        peer = c.peers.get(machine)
        if peer is None:
            raise ProbeFailed(f"machine {machine} is not admitted (flow cluster status)")
        if peer.state != CONNECTED or not peer.address or peer.routing_id is None:
            raise ProbeFailed(f"machine {machine} is {peer.state}, not connected "
                              "(flow cluster status)")  # fmt: skip
        return peer.address, peer.public_key

    async def _probe_link(self, link: PlannedLink, large: int, timeout_s: float) -> Measured:
        target_host, target_key = self._place(link.target)
        _, source_key = self._place(link.source)
        probe = secrets.token_hex(8)
        send, receive = trio.open_memory_channel[tuple[str, msg.ProbeReport]](4)
        self.coordinator.probes[probe] = send
        stop = threading.Event()  # the coordinator's own receiver, once its sender is done
        outcome: Measured | ProbeFailed | _Silent
        try:
            async with trio.open_nursery() as nursery:  # the coordinator's receiver serves here
                try:
                    port = await self._listen(nursery, probe, link, target_host, source_key,
                                              timeout_s, stop, receive)  # fmt: skip
                    endpoint = f"tcp://{target_host}:{port}"
                    outcome = await self._send(probe, link.source, endpoint, target_key, large,
                                               timeout_s, receive)  # fmt: skip
                except (ProbeFailed, _Silent) as exc:  # raised out of the nursery, not grouped
                    outcome = exc
                finally:
                    stop.set()
        finally:
            del self.coordinator.probes[probe]
        if isinstance(outcome, Measured):
            return outcome
        raise outcome

    async def _listen(self, nursery: trio.Nursery, probe: str, link: PlannedLink, host: str,
                      sender_key: str, timeout_s: float, stop: threading.Event,
                      reports: trio.MemoryReceiveChannel[tuple[str, msg.ProbeReport]]
                      ) -> int:  # fmt: skip
        wait_s = answers_within(timeout_s)
        if link.target == self.coordinator.name:
            return await self.local.listen(nursery, host, sender_key, wait_s, stop)
        self._ask(link.target, msg.ProbeListen(probe, host, sender_key, f"{wait_s:g}"))
        report = await _report(reports, link.target, LISTEN_ANSWER_S)
        port = report.port
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ProbeFailed(f"machine {link.target}: no probe receiver: "
                              f"{report.error or 'no port given'}")  # fmt: skip
        return int(port)

    async def _send(self, probe: str, source: str, endpoint: str, server_key: str, large: int,
                    timeout_s: float,
                    reports: trio.MemoryReceiveChannel[tuple[str, msg.ProbeReport]]
                    ) -> Measured:  # fmt: skip
        if source == self.coordinator.name:
            return await self.local.send(endpoint, server_key, large, timeout_s)
        self._ask(source, msg.ProbeSend(probe, endpoint, server_key, str(large), f"{timeout_s:g}"))
        report = await _report(reports, source, answers_within(timeout_s))
        try:
            if report.error:
                small = _seconds(report.small_s) if report.small_s else None
                raise ProbeFailed(report.error, small)
            return Measured(_seconds(report.small_s), _seconds(report.large_s))
        except ValueError:
            raise ProbeFailed(f"machine {source}: a malformed probe report") from None

    def _ask(self, machine: str, request: msg.ProbeListen | msg.ProbeSend) -> None:
        peer = self.coordinator.peers[machine]
        assert peer.routing_id is not None  # checked by _place
        self.coordinator.send(peer.routing_id, request)


def _seconds(text: str) -> float:
    value = float(text) if len(text) <= 20 else -1.0
    if not 0 <= value < 1e6:
        raise ValueError(text)
    return value


async def _report(reports: trio.MemoryReceiveChannel[tuple[str, msg.ProbeReport]],
                  machine: str, within: float) -> msg.ProbeReport:  # fmt: skip
    """The next report `machine` sent for this probe; _Silent after `within` seconds."""
    with trio.move_on_after(within):
        async for sender, report in reports:
            if sender == machine:
                return report
    raise _Silent(machine, within)
