"""A member's side of the cluster link: hello, heartbeats, a lost coordinator, reconnection.

The link never stops anything on this machine: a lost coordinator is logged and shown in
`flow cluster status`, and the link is reopened with the project's retry helper (bounded
backoff), round after round, until it is back or the daemon stops.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio
import zmq

from daemon.cluster.keys import KeyPair, Membership, forget_membership
from daemon.cluster.link import Timing, client_socket
from daemon.model import cluster_messages as msg
from daemon.model import replies as rp
from daemon.model.cluster import fingerprint
from daemon.model.retry import Backoff, RetryExhausted
from daemon.run.retry import retry_async
from daemon.run.zmq_trio import SocketOwner

log = logging.getLogger(__name__)

CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
LOST: Final = "lost"
REMOVED: Final = "removed"
QUEUE_ROOM: Final = 8  # messages waiting on the link, past which `has_room` says no
# one round of reconnection attempts; a new round starts when it runs out
RECONNECT_ROUND: Final = Backoff(attempts=40, initial=0.2, max_delay=2.0, deadline=60.0)


class LinkDown(Exception):
    """The coordinator did not answer the hello within the bound, or went silent."""


@attrs.define(eq=False)
class _Session:
    """One socket's life on the link: the socket, its owner task's scope."""

    sock: zmq.Socket[bytes]
    owner: SocketOwner
    scope: trio.CancelScope
    plain_key: str

    async def pump(self, on_message: Callable[[list[bytes]], None]) -> None:
        with self.scope:
            await self.owner.serve(on_message)

    def close(self, *, goodbye: bool) -> None:
        """Synchronous, so no other task touches the socket meanwhile; `goodbye`: say `bye`
        first and give it a second to leave."""
        if goodbye:
            try:
                self.sock.send(msg.encode(msg.Bye(self.plain_key)), zmq.NOBLOCK)
                self.sock.setsockopt(zmq.LINGER, 1000)
            except zmq.ZMQError:
                pass
        self.scope.cancel()
        self.sock.close()


@attrs.define(eq=False)
class Member:
    """This machine's link to its coordinator; `serve` runs it."""

    home: Path
    membership: Membership
    keys: KeyPair
    timing: Timing
    link: str = CONNECTING
    last_heard: float | None = None  # trio clock
    welcomed: trio.Event = attrs.field(factory=trio.Event)
    leaving: bool = False  # set by the shutdown path: say goodbye when the link closes
    # runs placed here (daemon/cluster/host.py): their relayed messages, and the way back
    on_carry: Callable[[msg.Carry], None] = lambda carry: None
    on_welcome: Callable[[], None] = lambda: None  # the link is (again) up
    owner: SocketOwner | None = None  # the connected session's socket
    # the coordinator's link probes (daemon/cluster/probe_agent.py)
    on_probe: Callable[[msg.ProbeListen | msg.ProbeSend], None] = lambda request: None

    def send_carry(self, carry: msg.Carry) -> bool:
        """A relayed message to the coordinator; False (dropped) while the link is down."""
        if self.owner is None or self.link != CONNECTED:
            return False
        return self.owner.send([msg.encode(carry)])

    def send_report(self, report: msg.ProbeReport) -> bool:
        """A link probe's report to the coordinator; False (dropped) while the link is down."""
        if self.owner is None or self.link != CONNECTED:
            return False
        return self.owner.send([msg.encode(report)])

    def has_room(self, most: int = QUEUE_ROOM) -> bool:
        """The link is up and holds at most `most` messages not sent yet (what may wait
        for room, such as forwarded log lines, never crowds out a run's messages)."""
        return (self.owner is not None and self.link == CONNECTED
                and self.owner.statistics().queued <= most)  # fmt: skip

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the link, keep it while heartbeats come, reopen it when they stop.

        Only the opening goes through the retry helper (whose deadline would cancel a
        connected session); each loss starts a fresh round, from its shortest delay.
        """
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while self.link != REMOVED:
                    try:
                        session = await retry_async(
                            lambda: self._open(context, nursery),
                            what=f"the link to coordinator {self.membership.coordinator_address}",
                            policy=RECONNECT_ROUND,
                            retry_on=(LinkDown,),
                        )
                    except RetryExhausted as exc:
                        log.warning("cluster: %s; trying again", exc)
                        continue
                    self.owner = session.owner
                    self.on_welcome()
                    try:
                        # a lost link is logged in _beat; the next round reopens it
                        with contextlib.suppress(LinkDown):
                            await self._beat(session.owner)
                    finally:
                        self.owner = None
                        session.close(goodbye=self.leaving)
                nursery.cancel_scope.cancel()
        finally:
            context.destroy(linger=0)

    async def _open(self, context: zmq.Context[zmq.Socket[bytes]],
                    nursery: trio.Nursery) -> _Session:  # fmt: skip
        """A new socket, its pump task, and the coordinator's welcome; LinkDown without it."""
        sock = client_socket(
            context,
            self.timing,
            server_key=self.membership.coordinator_key,
            secret_key=None if self.membership.plain else self.keys.secret,
        )
        session = _Session(sock, SocketOwner(sock, name="cluster link"), trio.CancelScope(),
                           self._plain_key())  # fmt: skip
        self.welcomed = trio.Event()
        try:
            sock.connect(self.membership.coordinator_address)
            nursery.start_soon(session.pump, self._on_message)
            session.owner.send([msg.encode(msg.Hello(self.membership.name, self._plain_key()))])
            with trio.move_on_after(self.timing.lost_after):
                await self.welcomed.wait()
            if not self.welcomed.is_set():
                raise LinkDown(f"no welcome within {self.timing.lost_after:g} s")
        except BaseException:
            session.close(goodbye=False)
            raise
        return session

    async def _beat(self, owner: SocketOwner) -> None:
        """Heartbeats until the coordinator is silent past the bound (LinkDown) or removes us."""
        while self.link != REMOVED:
            owner.send([msg.encode(msg.Beat(self._plain_key()))])
            silent = trio.current_time() - (self.last_heard or trio.current_time())
            if silent > self.timing.lost_after:
                self.link = LOST
                log.warning("cluster: coordinator %s lost (silent %.1f s); reconnecting",
                            self.membership.coordinator_address, silent)  # fmt: skip
                raise LinkDown(f"silent {silent:.1f} s")
            await trio.sleep(self.timing.heartbeat)

    def _plain_key(self) -> str:
        return self.keys.public if self.membership.plain else ""

    def _on_message(self, frames: list[bytes]) -> None:
        try:
            message = msg.decode(frames[-1])
        except msg.LinkMessageError as exc:
            log.debug("cluster: dropped a message: %s", exc)
            return
        self.last_heard = trio.current_time()
        if isinstance(message, msg.Welcome):
            if self.link != CONNECTED:
                log.info("cluster: connected to coordinator %s as %s", message.coordinator,
                         self.membership.name)  # fmt: skip
            self.link = CONNECTED
            self.welcomed.set()
            if self.owner is not None:
                # a welcome on a session already open: the coordinator restarted and our
                # socket reconnected by itself; it learns what this machine runs again
                self.on_welcome()
        elif isinstance(message, msg.Leave):
            log.error("cluster: %s; this machine left the cluster (join again with a new "
                      "token)", message.reason)  # fmt: skip
            self.link = REMOVED
            forget_membership(self.home)
        elif isinstance(message, msg.Refused):
            log.error("cluster: the coordinator refused this machine: %s", message.reason)
        elif isinstance(message, msg.Carry):
            self.on_carry(message)
        elif isinstance(message, msg.ProbeListen | msg.ProbeSend):
            self.on_probe(message)
        elif isinstance(message, msg.Beat) and self.link == LOST:
            self.link = CONNECTED
            self.on_welcome()

    def status(self) -> rp.ClusterStatusReply:
        age = None
        if self.last_heard is not None:
            age = round(trio.current_time() - self.last_heard, 2)
        me = rp.MachineRow(self.membership.name, "member", None, self.link, age,
                           fingerprint(self.keys.public), None)  # fmt: skip
        return rp.ClusterStatusReply(
            role="member", machine=self.membership.name, coordinator=None,
            coordinator_address=self.membership.coordinator_address, link=self.link,
            link_age_s=age, machines=[me],
        )  # fmt: skip
