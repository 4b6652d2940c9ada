"""The coordinator's side of the cluster link: one CURVE ROUTER, ZAP, admission, heartbeats.

Who sent a message is the CURVE key ZAP authenticated (the frame's `User-Id`), never a
name in the message. ZAP (pyzmq's `ThreadAuthenticator`, on the link's own context) accepts
exactly the keys in `allowed`: admitted machines' keys and live tokens' admission keys; the
set is swapped whole when it changes, so the ZAP thread reads one consistent set. A key
taken out is refused at its next handshake (docs/cluster.md, security model).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket as stdlib_socket
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs
import trio
import zmq

from daemon.cluster import records
from daemon.cluster.keys import KeyPair
from daemon.cluster.link import Timing, link_options
from daemon.cluster.listen_guard import LISTEN_BACKLOG, guard_listen
from daemon.model import cluster_messages as msg
from daemon.model import replies as rp
from daemon.model.cluster import (
    DEFAULT_TOKEN_TTL_S,
    MAX_TOKEN_TTL_S,
    TOKEN_PREFIX,
    ZAP_DOMAIN,
    ClusterConfigError,
    JoinToken,
    ListenAddress,
    check_machine_name,
    fingerprint,
    is_z85_key,
    parse_token,
)
from daemon.model.errors import BadRequest, ControlSocketUnavailable, StateWriteFailed
from daemon.run.runtime import served_machines
from daemon.run.zmq_trio import SocketOwner
from daemon.store import Store

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

ADMITTED: Final = "admitted"  # admitted, never connected yet
CONNECTED: Final = "connected"
LOST: Final = "lost"
LEFT: Final = "left"


@attrs.define(eq=False)
class Peer:
    """A member machine as the coordinator sees it."""

    name: str
    public_key: str
    address: str | None
    state: str
    last_beat: float | None = None  # trio clock
    routing_id: bytes | None = None


@attrs.define(eq=False)
class Coordinator:
    """Admits machines, keeps their link state; `serve` runs it."""

    store: Store
    name: str
    listen: ListenAddress
    keys: KeyPair
    timing: Timing
    peers: dict[str, Peer] = attrs.field(factory=dict)
    admission: dict[str, str] = attrs.field(factory=dict)  # admission key -> token id
    allowed: frozenset[str] = frozenset()  # read by the ZAP thread
    owner: SocketOwner | None = None
    # a placed run's relayed messages (daemon/cluster/placing.py), by the sending machine
    on_carry: Callable[[str, msg.Carry], None] = lambda machine, carry: None
    # live nodes per machine, for `flow cluster status` (set from the runtime's runs)
    node_counts: Callable[[], dict[str, int]] = dict
    # a machine's new state, for the runs with nodes on it (lost, back)
    on_state: Callable[[str, str], None] = lambda machine, state: None
    # link probes under way (daemon/cluster/doctor.py): their members' reports, by probe id
    probes: dict[str, trio.MemorySendChannel[tuple[str, msg.ProbeReport]]] = attrs.field(
        factory=dict)  # fmt: skip

    # ------------------------------------------------------------------ ZAP (its thread)

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials provider: is this client key one we take?"""
        return domain == ZAP_DOMAIN and key.decode("ascii", "replace") in self.allowed

    def _refresh_allowed(self) -> None:
        try:
            self.admission = records.live_admission_keys(self.store, time.time())
        except sqlite3.Error as exc:  # keep the tokens known so far; the link lives on
            log.warning("cluster: cannot read the join tokens: %s", exc)
        keys = {peer.public_key for peer in self.peers.values()}
        self.allowed = frozenset(keys | set(self.admission))

    # ------------------------------------------------------------------ the tasks

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for record in records.machines(self.store):
            # a machine's state from before a restart is not known now: `lost` until it
            # speaks, unless it said goodbye
            state = LEFT if record.state == LEFT else (ADMITTED if record.state == ADMITTED
                                                       else LOST)  # fmt: skip
            self.peers[record.name] = Peer(record.name, record.public_key, record.address, state)
        self._refresh_allowed()
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        auth: ThreadAuthenticator | None = None
        router: zmq.Socket[bytes] | None = None
        try:
            router = context.socket(zmq.ROUTER)
            for option, value in link_options(self.timing).items():
                router.setsockopt(option, value)
            if not self.listen.plain:
                # imported here: it pulls in asyncio (~1 MiB), which a daemon that never
                # coordinates a cluster should not carry (SPEC's idle RSS cap)
                from zmq.auth.thread import ThreadAuthenticator

                auth = ThreadAuthenticator(context, log=logging.getLogger("daemon.cluster.zap"))
                auth.start()
                auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)
                router.setsockopt(zmq.CURVE_SERVER, 1)
                router.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret.encode())
                router.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public.encode())
                router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
                # no ZAP answer (the handler gone) is a refusal, never an open door
                router.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            router.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
            try:
                router.bind(self.listen.endpoint)
            except zmq.ZMQError as exc:
                raise ControlSocketUnavailable(
                    f"cannot listen on {self.listen.endpoint}: {exc}"
                ) from None
            self.owner = SocketOwner(router, name="cluster link")
            mode = "PLAIN TCP (--insecure-loopback)" if self.listen.plain else "CURVE"
            log.info("cluster: coordinating as %s on %s (%s, key %s)", self.name,
                     self.listen.endpoint, mode, fingerprint(self.keys.public))  # fmt: skip
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.owner.serve_frames, self.on_message)
                nursery.start_soon(self._watch)
                nursery.start_soon(guard_listen, router, self.listen.endpoint)
                task_status.started()
        finally:
            # the router first: the handler outlives the socket it guards (and with no
            # handler, ZAP_ENFORCE_DOMAIN refuses rather than admits)
            if router is not None:
                router.close(linger=0)
            if auth is not None:
                auth.stop()  # joins the ZAP thread: a short, bounded wait
            context.destroy(linger=0)

    async def _watch(self) -> None:
        """Every heartbeat: send ours, mark the silent `lost`, drop expired tokens."""
        while True:
            now = trio.current_time()
            for peer in self.peers.values():
                if peer.state == CONNECTED and peer.routing_id is not None:
                    self.send(peer.routing_id, msg.Beat())
                silent = now - peer.last_beat if peer.last_beat is not None else 0.0
                if peer.state == CONNECTED and silent > self.timing.lost_after:
                    log.warning("cluster: machine %s lost (silent %.1f s)", peer.name, silent)
                    self._set_state(peer, LOST)
            self._refresh_allowed()
            await trio.sleep(self.timing.heartbeat)

    # ------------------------------------------------------------------ messages

    def send(self, routing_id: bytes, message: msg.LinkMessage) -> None:
        assert self.owner is not None
        self.owner.send([routing_id, msg.encode(message)])

    def _set_state(self, peer: Peer, state: str, address: str | None = None) -> None:
        """Memory is what `status` shows; the record only carries `left` across a restart,
        so a failed write is a log line, never the end of the link."""
        peer.state = state
        if address:
            peer.address = address
        self.on_state(peer.name, state)
        try:
            records.set_state(self.store, peer.name, state, address)
        except StateWriteFailed as exc:
            log.warning("cluster: %s", exc)

    def on_message(self, frames: list[zmq.Frame]) -> None:
        if len(frames) != 2:
            return
        routing_id, body = frames[0].bytes, frames[1]
        try:
            message = msg.decode(body.bytes)
        except msg.LinkMessageError as exc:
            log.debug("cluster: dropped a message: %s", exc)
            return
        key = self._sender_key(body, message)
        address = _peer_address(body)
        if isinstance(message, msg.Join):
            self._on_join(routing_id, key, address, message)
            return
        peer = next((p for p in self.peers.values() if p.public_key == key), None)
        if peer is None:  # an admission key, or a machine removed while connected
            return
        peer.routing_id = routing_id
        peer.last_beat = trio.current_time()
        if isinstance(message, msg.Hello):
            if message.name != peer.name:
                self.send(routing_id, msg.Refused(f"this key belongs to machine {peer.name}"))
                return
            log.info("cluster: machine %s connected from %s", peer.name, address)
            self._set_state(peer, CONNECTED, address)
            self.send(routing_id, msg.Welcome(coordinator=self.name))
        elif isinstance(message, msg.Bye):
            log.info("cluster: machine %s left", peer.name)
            self._set_state(peer, LEFT)
        elif isinstance(message, msg.Carry) and peer.state == CONNECTED:
            self.on_carry(peer.name, message)
        elif isinstance(message, msg.ProbeReport):
            self._on_probe_report(peer.name, message)
        elif isinstance(message, msg.Beat) and peer.state in (LOST, ADMITTED):
            log.info("cluster: machine %s connected again", peer.name)
            self._set_state(peer, CONNECTED, address)
            # its socket may have reconnected by itself to a restarted coordinator, without
            # a hello: welcomed, it reports what it runs (daemon/cluster/host.py)
            self.send(routing_id, msg.Welcome(coordinator=self.name))

    def _on_probe_report(self, machine: str, report: msg.ProbeReport) -> None:
        waiting = self.probes.get(report.probe)
        if waiting is not None:
            with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                waiting.send_nowait((machine, report))

    def _sender_key(self, frame: zmq.Frame, message: msg.LinkMessage) -> str:
        if not self.listen.plain:
            return str(frame.get("User-Id") or "")
        # plain (loopback only, asked for): no handshake proved anything; the body says
        if isinstance(message, msg.Join):
            return message.admission
        return getattr(message, "key", "")

    def _on_join(self, routing_id: bytes, key: str, address: str | None, join: msg.Join) -> None:
        if key not in self.admission:  # a machine's own key, or a token revoked since
            return
        token_id = self.admission[key]
        try:
            name = check_machine_name(join.name)
        except ClusterConfigError as exc:
            self.send(routing_id, msg.Refused(str(exc)))
            return
        refusal = self._join_refusal(name, join.public_key)
        if refusal is not None:
            log.warning("cluster: refused machine %s: %s", name, refusal)
            self.send(routing_id, msg.Refused(refusal))
            return
        record = records.MachineRecord(name, join.public_key, address, time.time(), ADMITTED)
        records.admit(self.store, record)
        self.peers[name] = Peer(name, join.public_key, address, ADMITTED)
        self._refresh_allowed()
        log.info("cluster: admitted machine %s (key %s, token %s)", name,
                 fingerprint(join.public_key), token_id)  # fmt: skip
        self.send(routing_id, msg.Admitted(name=name, coordinator=self.name))

    def _join_refusal(self, name: str, public_key: str) -> str | None:
        if not is_z85_key(public_key) or public_key == self.keys.public:
            return "the machine's public key is not a 40-character Z85 key of its own"
        if name == self.name:
            return f"machine name {name} is the coordinator's own"
        if name in served_machines():  # a dataflow's `deploy: {machine: NAME}` means it
            return f"machine name {name} names the coordinator in a dataflow's deploy"
        known = self.peers.get(name)
        if known is not None and known.public_key != public_key:
            return (f"machine {name} is already admitted with another key; "
                    f"`flow cluster remove {name}` on the coordinator first")  # fmt: skip
        other = next((p.name for p in self.peers.values() if p.public_key == public_key), None)
        if other is not None and other != name:
            return f"this machine's key is already admitted as {other}"
        return None

    # ------------------------------------------------------------------ control requests

    def new_token(self, ttl: float | None) -> rp.TokenReply:
        ttl = DEFAULT_TOKEN_TTL_S if ttl is None else ttl
        if not 0 < ttl <= MAX_TOKEN_TTL_S:
            raise BadRequest(f"ttl {ttl:g} s: expected more than 0 and at most 30 days")
        public, secret = zmq.curve_keypair()
        token_id = secrets.token_hex(4)
        now = time.time()
        records.add_token(self.store, token_id, public.decode(), now, now + ttl)
        self._refresh_allowed()
        token = JoinToken(self._advertised(), self.keys.public, secret.decode(), self.listen.plain)
        log.info("cluster: token %s issued (expires in %g s)", token_id, ttl)
        return rp.TokenReply(token=token.text(), id=token_id, expires=now + ttl)

    def _advertised(self) -> str:
        """The address a token names: the one bound, or this host's name for a wildcard."""
        host = self.listen.host
        if host in ("*", "0.0.0.0", "[::]"):
            host = stdlib_socket.gethostname()
        return f"tcp://{host}:{self.listen.port}"

    def revoke(self, ref: str) -> None:
        """Revoke a token named by its id or its whole text (whose admission key we know)."""
        if ref.startswith(TOKEN_PREFIX):
            try:
                secret = parse_token(ref).admission_secret
            except ClusterConfigError as exc:
                raise BadRequest(str(exc)) from None
            ref = zmq.curve_public(secret.encode()).decode()
        if records.revoke_token(self.store, ref, time.time()) is None:
            raise BadRequest(f"no live join token {ref[:40]!r} (revoked, expired or unknown)")
        self._refresh_allowed()  # its key is refused from the next handshake on

    def remove(self, name: str) -> None:
        peer = self.peers.get(name)
        if peer is None:
            raise BadRequest(f"no admitted machine {name[:80]!r} (flow cluster status lists them)")
        if peer.state == CONNECTED and peer.routing_id is not None:
            self.send(peer.routing_id, msg.Leave("removed by the coordinator"))
        del self.peers[name]
        records.remove(self.store, name)
        self._refresh_allowed()
        log.info("cluster: removed machine %s (key %s)", name, fingerprint(peer.public_key))

    def status(self) -> rp.ClusterStatusReply:
        now, counts = trio.current_time(), self.node_counts()
        rows = [rp.MachineRow(self.name, "coordinator", self.listen.endpoint, CONNECTED, None,
                              fingerprint(self.keys.public), counts.get(self.name, 0))]  # fmt: skip
        for peer in sorted(self.peers.values(), key=lambda p: p.name):
            age = round(now - peer.last_beat, 2) if peer.last_beat is not None else None
            rows.append(rp.MachineRow(peer.name, "member", peer.address, peer.state, age,
                                      fingerprint(peer.public_key),
                                      counts.get(peer.name, 0)))  # fmt: skip
        return rp.ClusterStatusReply(
            role="coordinator", machine=self.name, coordinator=self.name,
            coordinator_address=self.listen.endpoint, link=None, link_age_s=None, machines=rows,
        )  # fmt: skip


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        return str(frame.get("Peer-Address")) or None
    except zmq.ZMQError:
        return None
