"""A member's share of runs placed on it by the coordinator (docs/cluster.md, "Placement").

The coordinator supervises every node; this machine lends it a keeper per run (started on
the run's first keeper message, spawning and signalling the nodes placed here as a local
run's keeper does) and relays the channel of that keeper and of those nodes over the
cluster link. What only this machine knows goes into each spawn here: its environment
beneath the node's, its node channel, its key file, its log folder.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import uuid
from collections.abc import Callable
from typing import Final

import attrs
import trio

from daemon.cluster.keys import KeyPair, secret_key_file
from daemon.cluster.link import free_ports
from daemon.cluster.log_forward import LogForwarder
from daemon.keeper.ledger import EXIT_LEDGER
from daemon.model import keeper_messages as km
from daemon.model.cluster_messages import LOG_TAIL_BYTES, MAX_CARRY_BYTES, Carry, encode
from daemon.model.errors import KeeperLost
from daemon.model.settings import current as settings
from daemon.run.keeper_link import KeeperLink, start_keeper_process
from daemon.run.runtime import Runtime
from daemon.run.stale_processes import kill_run_processes
from node_sdk import paths

log = logging.getLogger(__name__)

INBOX: Final = 1000  # relayed keeper messages waiting; more are dropped with a line
UNSENT: Final = 10_000  # messages for the coordinator kept while the link is down
KEEPER_EXIT_S: Final = 10.0
MAX_PORTS: Final = 10_000
_NODE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _run_id(text: str) -> str | None:
    """A run id from the coordinator, or None: it names folders here, so only a UUID."""
    try:
        return str(uuid.UUID(text)) if len(text) == 36 else None
    except ValueError:
        return None


@attrs.define(eq=False)
class _Hosted:
    """One run's keeper on this machine."""

    run_id: str
    link: KeeperLink
    process: trio.Process
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    served: trio.Event = attrs.field(factory=trio.Event)
    live: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # node -> (generation, pid)


@attrs.define(eq=False)
class Host:
    """The runs this member hosts for its coordinator; `serve` runs it."""

    rt: Runtime
    keys: KeyPair
    link_send: Callable[[Carry], bool]  # over the link to the coordinator; False when down
    connected: Callable[[], bool]  # the link to the coordinator is up
    runs: dict[str, _Hosted] = attrs.field(factory=dict)
    forwarder: LogForwarder | None = None  # `flow logs -f` on the coordinator
    # what could not be sent while the link was down, sent when it is back (oldest dropped)
    _unsent: collections.deque[Carry] = attrs.field(factory=lambda: collections.deque(
        maxlen=UNSENT))  # fmt: skip
    _inbox: tuple[trio.MemorySendChannel[Carry], trio.MemoryReceiveChannel[Carry]] = (
        attrs.field(factory=lambda: trio.open_memory_channel[Carry](INBOX))
    )

    def send(self, carry: Carry) -> bool:
        """To the coordinator, in order: kept while the link is down (within the grace its
        nodes are re-adopted, and their exits must still reach it)."""
        if self._unsent:
            self.flush()
        if not self._unsent and self.link_send(carry):
            return True
        if len(self._unsent) == UNSENT:
            log.warning("cluster: %d relayed messages waiting: the oldest dropped", UNSENT)
        self._unsent.append(carry)
        return False

    def flush(self) -> None:
        """Send what waited for the link (the member calls it on each welcome)."""
        while self._unsent and self.link_send(self._unsent[0]):
            self._unsent.popleft()

    def report(self) -> None:
        """On each welcome: what waited for the link, then what this machine runs for the
        coordinator: the runs it hosts, and each one's keeper state (their nodes' generation
        and pid, and the exits of those that ended meanwhile). A restarted coordinator
        re-adopts them from it, or tells this machine to stop a run it no longer knows."""
        self.flush()
        self.send(Carry("", "hosted", " ".join(sorted(self.runs))))
        for hosted in self.runs.values():
            hosted.link.send(km.Attach())  # its State goes back as the run's keeper message

    def on_carry(self, carry: Carry) -> None:
        """A relayed message from the coordinator (the link's task: never blocks)."""
        run_id = _run_id(carry.run)
        if run_id is None:
            log.warning("cluster: dropped a relayed message of run %r", carry.run[:60])
        elif carry.kind == "node":
            if run_id in self.runs and carry.ident.startswith(f"{run_id}/"):
                assert self.rt.channel is not None
                self.rt.channel.owner.send([carry.ident.encode(), carry.body.encode()])
        else:
            try:
                self._inbox[0].send_nowait(carry)
            except trio.WouldBlock:
                log.error("cluster: run %s: a relayed %s message was dropped (%d waiting)",
                          run_id, carry.kind, INBOX)  # fmt: skip

    def relay_from_node(self, run_id: str, identity: bytes, payload: bytes) -> bool:
        """The node channel's hook: a frame of a node hosted here goes to the coordinator."""
        if run_id not in self.runs:
            return False
        try:
            body = payload.decode()
        except UnicodeDecodeError:
            return True  # not a channel frame (the channel decoder took it, so never here)
        if not self.send(Carry(run_id, "node", body, identity.decode())):
            log.debug("cluster: run %s: a node frame was not relayed (link down)", run_id)
        return True

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_link)
                async for carry in self._inbox[1]:
                    await self._handle(nursery, carry)
        finally:
            with trio.CancelScope(shield=True):
                async with trio.open_nursery() as closing:
                    for hosted in list(self.runs.values()):
                        closing.start_soon(self._close, hosted)

    async def _watch_link(self) -> None:
        """Past `cluster_grace` without the coordinator, its runs' nodes here are stopped:
        no orphans. Within it they go on (a lost coordinator stops nothing here)."""
        since: float | None = None
        while True:
            now = trio.current_time()
            since = None if self.connected() else (since if since is not None else now)
            grace = settings().cluster_grace
            if since is not None and now - since > grace and self.runs:
                log.warning("cluster: no coordinator for %.1f s (cluster_grace %g s): "
                            "stopping the nodes it placed here", now - since, grace)  # fmt: skip
                async with trio.open_nursery() as closing:
                    for hosted in list(self.runs.values()):
                        closing.start_soon(self._close, hosted)
                self._unsent.clear()  # nobody will ask for them any more
            await trio.sleep(settings().cluster_heartbeat)

    async def _handle(self, nursery: trio.Nursery, carry: Carry) -> None:
        run_id = str(_run_id(carry.run))
        if carry.kind == "logs":
            tail = self._log_tail(run_id, carry.ident)
            # JSON escapes may grow it past a link message: keep the newest part that fits
            while len(encode(Carry(run_id, "logs", tail, carry.ident))) > MAX_CARRY_BYTES:
                tail = tail[len(tail) // 2 :]
            self.send(Carry(run_id, "logs", tail, carry.ident))
            return
        if carry.kind == "follow":
            if self.forwarder is not None and _NODE_ID.fullmatch(carry.ident) is not None:
                self.forwarder.follow(run_id, carry.ident, carry.body)
            return
        if carry.kind == "ports":
            count = int(carry.body) if carry.body.isdigit() and len(carry.body) <= 5 else 0
            ports = free_ports("0.0.0.0", count) if 0 < count <= MAX_PORTS else []
            self.send(Carry(run_id, "ports", " ".join(map(str, ports))))
            return
        try:
            message = km.decode(carry.body.encode())
        except km.KeeperMessageError as exc:
            log.warning("cluster: run %s: dropped a keeper message: %s", run_id, exc)
            return
        if not isinstance(message, km.ToKeeper):
            return  # only a daemon's messages go to a keeper
        hosted = self.runs.get(run_id)
        if isinstance(message, km.Quit):
            if hosted is not None:
                nursery.start_soon(self._close, hosted)
            return
        if hosted is None:
            if not isinstance(message, km.Attach | km.Spawn):
                # a late word for a run this machine no longer hosts (an unwire after its
                # quit): a keeper started for it would serve nothing and never be told to quit
                log.info("cluster: run %s: a %s for no keeper here: dropped", run_id,
                         type(message).__name__)  # fmt: skip
                return
            hosted = await self._open(nursery, run_id)
        if isinstance(message, km.Spawn):
            if _NODE_ID.fullmatch(message.node) is None:
                log.warning("cluster: run %s: refused a spawn of node %r", run_id,
                            message.node[:70])  # fmt: skip
                return
            message = self._localize(run_id, message)
        elif isinstance(message, km.WireStdout) and message.tcp is not None:
            message = attrs.evolve(message, tcp=self._own_key(message.tcp))
        hosted.link.send(message)

    async def _open(self, nursery: trio.Nursery, run_id: str) -> _Hosted:
        sockets = paths.run_socket_dir(self.rt.socket_dir, run_id)
        sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_dir = paths.run_dir(self.rt.home, run_id)
        paths.log_dir(self.rt.home, run_id).mkdir(parents=True, exist_ok=True)
        endpoint = f"ipc://{sockets / 'keeper'}"
        process = await start_keeper_process(
            endpoint, settings().daemon_grace, run_dir / "keeper.log", run_dir / EXIT_LEDGER
        )
        link = KeeperLink.connect(self.rt.context, endpoint,
                                  lambda message: self._from_keeper(run_id, message))  # fmt: skip
        hosted = self.runs[run_id] = _Hosted(run_id, link, process)
        nursery.start_soon(self._serve_link, hosted)
        log.info("cluster: run %s: hosting its nodes placed here (keeper %d)", run_id,
                 process.pid)  # fmt: skip
        return hosted

    def _from_keeper(self, run_id: str, message: km.FromKeeper) -> None:
        hosted = self.runs.get(run_id)
        if hosted is not None and isinstance(message, km.Spawned):
            hosted.live[message.node] = (message.generation, message.pid)
        elif hosted is not None and isinstance(message, km.Exited):
            hosted.live.pop(message.node, None)
            if self.forwarder is not None:  # its last lines reach a follower before its exit
                self.forwarder.flush(run_id, message.node)
        if not isinstance(message, km.Pong):  # the keeper's liveness is this daemon's affair
            self.send(Carry(run_id, "keeper", km.encode(message).decode()))

    async def _serve_link(self, hosted: _Hosted) -> None:
        try:
            with hosted.scope:
                await hosted.link.serve()
        except* KeeperLost as group:  # raised from inside the link's own nursery
            self._lose_keeper(hosted, str(group.exceptions[0]))
            # what its nodes moved out of their groups, as for a local run (lifecycle)
            sockets = str(paths.run_socket_dir(self.rt.socket_dir, hosted.run_id))
            home = str(self.rt.home)
            await trio.to_thread.run_sync(kill_run_processes, hosted.run_id, sockets, home)
        finally:
            hosted.served.set()

    def _lose_keeper(self, hosted: _Hosted, cause: str) -> None:
        """The keeper is gone with its reports: kill the process groups of its nodes (each
        leads its own) and tell the coordinator they ended, so its slots are not left
        waiting (the same as a local run's lost keeper, daemon/run/supervisor.py)."""
        log.error("cluster: run %s: %s: stopping its nodes here", hosted.run_id, cause)
        for node, (generation, pid) in hosted.live.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            exited = km.Exited(node, generation, -int(signal.SIGKILL), (cause,))
            self.send(Carry(hosted.run_id, "keeper", km.encode(exited).decode()))
        hosted.live.clear()

    async def _close(self, hosted: _Hosted) -> None:
        """The keeper stops what is left of its nodes (grace, SIGTERM, SIGKILL) and exits."""
        if self.runs.get(hosted.run_id) is not hosted:
            return
        del self.runs[hosted.run_id]
        hosted.scope.cancel()
        await hosted.served.wait()
        hosted.link.quit()
        with trio.move_on_after(KEEPER_EXIT_S):
            await hosted.process.wait()
        if hosted.process.returncode is None:
            log.error("cluster: run %s: keeper %d did not exit: killing it", hosted.run_id,
                      hosted.process.pid)  # fmt: skip
            hosted.process.kill()
        shutil.rmtree(paths.run_socket_dir(self.rt.socket_dir, hosted.run_id),
                      ignore_errors=True)  # fmt: skip
        log.info("cluster: run %s: its nodes here have ended", hosted.run_id)

    def _log_tail(self, run_id: str, node_id: str) -> str:
        """The last LOG_TAIL_BYTES of a node's log here, from a line start ("" if none)."""
        if _NODE_ID.fullmatch(node_id) is None:
            return ""
        try:
            with paths.node_log(self.rt.home, run_id, node_id).open("rb") as log_file:
                size = log_file.seek(0, 2)
                log_file.seek(max(0, size - LOG_TAIL_BYTES))
                tail = log_file.read(LOG_TAIL_BYTES)
        except OSError:
            return ""
        if size > LOG_TAIL_BYTES:
            tail = tail.partition(b"\n")[2]  # a cut first line is dropped
        return tail.decode("utf-8", "replace")

    def _localize(self, run_id: str, spawn: km.Spawn) -> km.Spawn:
        """This machine's facts in a spawn: environment, node channel, key file, log."""
        env = {**self.rt.base_env, **spawn.env}
        try:
            config = json.loads(env.get("FLOW_NODE_CONFIG", ""))
        except ValueError:
            config = None
        if isinstance(config, dict):
            config["daemon"] = self.rt.nodes_endpoint
            config["descriptor"] = None  # the dataflow's copy is on the coordinator
            if isinstance(config.get("tcp"), dict):
                config["tcp"]["secret_file"] = str(secret_key_file(self.rt.home, self.keys))
            env["FLOW_NODE_CONFIG"] = json.dumps(config)
        log_path = paths.node_log(self.rt.home, run_id, spawn.node)
        stdout_as = spawn.stdout_as
        if stdout_as is not None and stdout_as.tcp is not None:  # the keeper sends across
            stdout_as = attrs.evolve(stdout_as, tcp=self._own_key(stdout_as.tcp))
        return attrs.evolve(spawn, env=env, log=str(log_path), stdout_as=stdout_as)

    def _own_key(self, keys: km.StdoutKeys) -> km.StdoutKeys:
        """This machine's key file in the keys a keeper sends a node's lines across with."""
        return attrs.evolve(keys, secret_file=str(secret_key_file(self.rt.home, self.keys)))

