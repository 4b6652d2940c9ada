"""The run keeper: parent of a run's node processes, so they outlive a daemon crash.

The daemon decides (spawn, stop, restart); the keeper does: it spawns each node in its own
process group, pumps its stdout and stderr into the node's log, reports exits with their
codes and stderr tails, and answers a daemon that comes back with the state of every node.
A daemon silent for longer than the grace is taken as gone for good: the keeper stops
every node (SIGTERM, then SIGKILL) and exits, so nothing is orphaned (SPEC 7.4).

It runs as its own process (`python -m daemon.keeper`) under the daemon, or as a thread
of `flow run`; either way it is plain blocking code around one `zmq.Poller`, no trio.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import attrs
import zmq

from daemon.keeper import affinity
from daemon.keeper.children import (
    Child,
    node_states,
    signal_group,
    signal_node,
    start_node,
    stop_children,
)
from daemon.keeper.forking import Forker
from daemon.keeper.ledger import append_exit
from daemon.keeper.logs import NodeLog, Tee
from daemon.keeper.reaper import Descendants, become_subreaper
from daemon.keeper.shm_cleanup import remove_run_segments
from daemon.keeper.stdout_output import EndedOutputs
from daemon.model.keeper_messages import (
    Attach,
    Degraded,
    Exited,
    FromKeeper,
    KeeperMessageError,
    Ping,
    Pong,
    Quit,
    Release,
    Signal,
    Spawn,
    Spawned,
    SpawnFailed,
    State,
    ToKeeper,
    UnwireStdout,
    WireStdout,
    decode,
    encode,
)

log = logging.getLogger(__name__)

READ_CHUNK = 65536
GROUP_TERM_S = 1.0  # what a node leaves in its group gets this long after SIGTERM
ORPHAN_KILL_S = 5.0  # nodes stopped for a lost daemon get this long before SIGKILL
TICK_S = 0.2
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})
SCAN_S = 1.0  # how often the run's descendants are looked for (tracked, reaped)
STATS_S = 1.0  # how often what changed on `send_stdout_as` outputs is reported, as SDK nodes do
# FLOW_TEST_HOOKS=keeper-raise: the loop raises once a node lives (tests/faults)
_TEST_FAULT = os.environ.get("FLOW_TEST_HOOKS", "")


@attrs.define(eq=False)
class Keeper:
    """Serves one run's daemon on a ROUTER socket; owns the run's node processes."""

    socket: zmq.Socket[bytes]
    context: zmq.Context[zmq.Socket[bytes]]
    grace: float
    tee: Tee | None = None
    in_thread: bool = False  # `flow run`: its nodes die with the thread (no keeper outlives)
    children: dict[str, Child] = attrs.field(factory=dict)
    daemon: bytes | None = None
    last_contact: float = attrs.field(factory=time.monotonic)
    quitting: bool = False
    ending_at: float | None = None
    degraded: str | None = None
    reported_drops: int = 0
    run_folder: str | None = None  # the run's socket folder name (12 hex digits of its id)
    run_sockets: Path | None = None  # that folder
    ledger: Path | None = None  # each node's own exit, appended (read by a later recovery)
    # the parent of what the nodes orphan (setsid, double fork): set for a keeper process
    # and for `flow run`'s keeper thread, not for a keeper some test runs in its process
    subreaper: bool = False
    descendants: Descendants = attrs.field(factory=lambda: Descendants(whole_process=False))
    last_scan: float = 0.0
    last_stats: float = 0.0
    ended_outputs: EndedOutputs = attrs.field(factory=EndedOutputs)
    forker: Forker = attrs.field(factory=Forker)  # Python nodes by fork (a subreaper only)
    _poller: zmq.Poller = attrs.field(factory=zmq.Poller)
    _fds: dict[int, Child] = attrs.field(factory=dict)

    @classmethod
    def bind(
        cls,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        grace: float,
        tee: Tee | None = None,
        in_thread: bool = False,
    ) -> Keeper:
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 1000)
        socket.bind(endpoint)
        keeper = cls(socket=socket, context=context, grace=grace, tee=tee, in_thread=in_thread)
        keeper._poller.register(socket, zmq.POLLIN)
        return keeper

    # ------------------------------------------------------------------ the loop

    def serve(self) -> None:
        """Until told to quit (or orphaned) and every child has been reported."""
        if self.subreaper:
            self.forker.enabled = become_subreaper()
            self.forker.prestart(os.environ)
        try:
            while not self._finished():
                for item, _ in self._poller.poll(int(TICK_S * 1000)):
                    if item is self.socket:
                        self._read_daemon()
                    else:
                        self._ready_fd(int(item))
                self._tick()
        finally:
            self.forker.close()
            # normally every child is reported by now; after an exception, none may outlive us
            stop_children(self._live(), ORPHAN_KILL_S)
            # nor anything they started, in whatever session or group it went to
            self.descendants.kill_all(self._pids(), skip=set())
            for child in self.children.values():
                for fd in list(child.pipes):
                    self._drop_fd(child, fd)
                if self._fds.pop(child.pidfd, None) is not None:
                    os.close(child.pidfd)
                self._close_child(child)
            self.ended_outputs.close_all()
            self.socket.close(linger=1000)
            if self.run_folder is not None:
                # the last process that knows the run: its segments and sockets go with it
                remove_run_segments(self.run_folder)
                if self.run_sockets is not None:
                    shutil.rmtree(self.run_sockets, ignore_errors=True)

    def _pids(self) -> set[int]:
        return {c.pid for c in self.children.values()}

    def _scan(self, now: float) -> None:
        """Remember the run's descendants (a thread keeper tells them apart by it) and
        collect the exits of the orphans re-parented to us, never a node's own."""
        self.last_scan = now
        self.descendants.scan(self._pids())
        live = {c.pid for c in self.children.values() if c.process.returncode is None}
        self.descendants.reap(live | self.forker.pids)  # a server: waited on by its Popen

    def _finished(self) -> bool:
        done = all(c.reported for c in self.children.values())
        return done and (self.quitting or self.ending_at is not None)

    def _tick(self) -> None:
        if _TEST_FAULT == "keeper-raise" and self.children:
            raise RuntimeError("test fault: keeper raised with live children")
        now = time.monotonic()
        if self.children and now - self.last_scan >= SCAN_S:
            self._scan(now)
        if now - self.last_stats >= STATS_S:
            self._report_stats(now)
        if self.degraded is not None and self._dropped() != self.reported_drops:
            self._report_degraded()  # at most once a tick: the count of lines lost
        if self.ending_at is None and now - self.last_contact > self.grace:
            self._read_daemon()  # sent while this keeper stood still: the silence was ours
            if now - self.last_contact > self.grace:
                log.warning("keeper: no daemon for %.0fs: stopping every node", self.grace)
                self._end_all()
        if self.ending_at is not None and now - self.ending_at > ORPHAN_KILL_S:
            for child in self._live():
                signal_node(child, signal.SIGKILL)
        for child in list(self.children.values()):
            if child.code is not None and not child.reported:
                if child.kill_at is not None and now >= child.kill_at:
                    signal_group(child.pid, signal.SIGKILL)
                    child.kill_at = None
                    child.pending.clear()
                    for fd in list(child.pipes):
                        self._drop_fd(child, fd)  # a grandchild holds it: stop reading
                if not child.pipes:
                    self._report_exit(child)

    def _end_all(self) -> None:
        """SIGTERM every live node now; `_tick` sends SIGKILL after ORPHAN_KILL_S."""
        if self.ending_at is None:
            self.ending_at = time.monotonic()
            for child in self._live():
                signal_node(child, signal.SIGTERM)

    def _live(self) -> list[Child]:
        return [c for c in self.children.values() if c.code is None]

    # ------------------------------------------------------------------ the daemon

    def _read_daemon(self) -> None:
        batch: list[tuple[bytes, ToKeeper]] = []
        while True:
            try:
                identity, payload = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                log.warning("keeper: dropped a message that is not two frames")
                continue
            try:
                message = decode(payload)
            except KeeperMessageError as exc:
                log.warning("keeper: dropped %d bytes: %s", len(payload), exc)
                continue
            if not isinstance(message, ToKeeper):
                log.warning("keeper: dropped a %s, which only a keeper sends", type(message))
                continue
            batch.append((identity, message))
        # the Python nodes these spawn are asked of the fork server at once, not in turn
        live = {node for node, child in self.children.items() if not child.reported}
        self.forker.prefetch([m for _, m in batch if isinstance(m, Spawn)], live, self.in_thread)
        for identity, message in batch:
            # the daemon is whoever attached last (one back after a crash attaches first);
            # another peer's ping is answered to it: exit reports never go to a stranger
            if isinstance(message, Attach) or self.daemon is None:
                self.daemon = identity
            if identity == self.daemon:
                self.last_contact = time.monotonic()
            try:
                self._handle(message, identity)
            except Exception:  # one bad message must not take the run's nodes down with it
                log.exception("keeper: a %s failed; serving on", type(message).__name__)
        self.forker.settle()  # a node forked for a spawn that did not happen: killed

    def _handle(self, message: ToKeeper, sender: bytes) -> None:
        if isinstance(message, Attach):
            pid = 0 if self.in_thread else os.getpid()  # a thread's: the daemon watches it
            self._send(State(nodes=node_states(self.children), degraded=self.degraded, pid=pid))
            self._report_stats(time.monotonic(), every=True)
        elif isinstance(message, Spawn):
            self._spawn(message)
        elif isinstance(message, Signal):
            child = self.children.get(message.node)
            if child is not None and child.code is None:
                signal_node(child, signal.Signals(message.sig))
        elif isinstance(message, Release | WireStdout | UnwireStdout):
            child = self.children.get(message.node)
            live = child.stdout_output if child is not None else None
            if isinstance(message, Release):  # the start barrier let it go
                same = child is not None and child.generation == message.generation
                self.ended_outputs.release(message.node, live if same else None)
            else:  # a live edge of the run
                self.ended_outputs.rewire(self.context, live, message)
        elif isinstance(message, Quit):
            # normally every node has exited by now; any left is stopped like an orphan
            self.quitting = True
            self._end_all()
        elif isinstance(message, Ping):
            self._send(Pong(), to=sender)  # the daemon's watch on it (KEEPER_SILENCE_S)

    def _send(self, message: FromKeeper, to: bytes | None = None) -> None:
        peer = to if to is not None else self.daemon
        if peer is None:
            return
        with contextlib.suppress(zmq.ZMQError):
            self.socket.send_multipart([peer, encode(message)], zmq.NOBLOCK)

    # ------------------------------------------------------------------ children

    def _spawn(self, message: Spawn) -> None:
        node, generation = message.node, message.generation
        old = self.children.get(node)
        if old is not None and not old.reported:
            # at most one live process per (run, node): refuse, never double
            self._send(SpawnFailed(node, generation, f"generation {old.generation} is still alive"))
            return
        run_id = message.env.get("FLOW_DATAFLOW")
        if run_id:
            self.descendants.run_ids.add(run_id)
        cpus = message.cpu_affinity
        if cpus is not None and (refused := affinity.unavailable(cpus)) is not None:
            self._send(SpawnFailed(node, generation, refused))
            return
        node_log = NodeLog.for_spawn(message, self._degrade, self.tee)
        try:
            forker = self.forker if message.fork else None  # `spawn: exec` asks for exec
            process = start_node(message.argv, message.env, message.cwd, self.in_thread, forker,
                                 cpus)  # fmt: skip
        except (OSError, ValueError) as exc:  # ValueError: an env or argv Popen cannot pass
            node_log.close()
            transient = isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS
            self._send(SpawnFailed(node, generation, str(exc), transient=transient))
            return
        if old is not None:  # before anything it prints: where the last generation ended
            node_log.note_restart(generation, old.generation, old.code)
        output = self.ended_outputs.output_for(self.context, node, generation, message.stdout_as)
        child = Child(
            node=node, generation=generation, process=process,
            pidfd=os.pidfd_open(process.pid), log=node_log, stdout_output=output,
            sends_records=message.stdout_as is not None and message.stdout_as.records,
            records_level=0 if message.stdout_as is None else message.stdout_as.min_level,
        )  # fmt: skip
        assert process.stdout is not None
        assert process.stderr is not None
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            fd = stream.fileno()
            os.set_blocking(fd, False)
            child.pipes[fd] = name
            child.files[fd] = stream
            self._fds[fd] = child
            self._poller.register(fd, zmq.POLLIN)
        self._fds[child.pidfd] = child
        self._poller.register(child.pidfd, zmq.POLLIN)
        self.children[node] = child
        self._send(Spawned(node, generation, process.pid))

    def _ready_fd(self, fd: int) -> None:
        child = self._fds.get(fd)
        if child is None:
            return
        if fd == child.pidfd:
            self._poller.unregister(fd)
            del self._fds[fd]
            child.code = child.process.wait()
            os.close(fd)
            # what the node left in its group: SIGTERM now, SIGKILL soon after; the pipes
            # are given up then too, even when what holds them left the group (setsid)
            signal_group(child.pid, signal.SIGTERM)
            child.kill_at = time.monotonic() + GROUP_TERM_S
            return
        now = time.time()  # before the read: no line is stamped later than it was written
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        child.take(fd, chunk, now)
        if not chunk:
            self._drop_fd(child, fd)

    def _drop_fd(self, child: Child, fd: int) -> None:
        with contextlib.suppress(KeyError):
            self._poller.unregister(fd)
        self._fds.pop(fd, None)
        child.pipes.pop(fd, None)
        # close through the file object: a bare os.close would leave it to close the fd
        # number again later, by then perhaps another child's pipe
        stream = child.files.pop(fd, None)
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

    def _report_stats(self, now: float, every: bool = False) -> None:
        self.last_stats = now
        live = [c.stdout_output for c in self.children.values() if c.stdout_output is not None]
        for report in self.ended_outputs.stats(live, every):
            self._send(report)

    def _report_exit(self, child: Child) -> None:
        child.reported = True
        self._close_child(child)
        self._report_stats(time.monotonic())  # its last lines counted before its exit
        # it ended on its own (or by the daemon), not by us: a later recovery must know
        if self.ending_at is None and self.ledger is not None:
            append_exit(self.ledger, child.node, child.generation, child.code)
        self._send(Exited(child.node, child.generation, child.code, tuple(child.tail)))

    def _close_child(self, child: Child) -> None:
        if child.stdout_output is not None:  # ended; its sockets serve its next generation
            self.ended_outputs.keep(child.node, child.stdout_output)
            child.stdout_output = None
        child.log.close()

    def _degrade(self, what: str) -> None:
        if self.degraded != what:
            self.degraded = what
            self._report_degraded()

    def _dropped(self) -> int:
        return sum(child.log.dropped for child in self.children.values())

    def _report_degraded(self) -> None:
        self.reported_drops = self._dropped()
        self._send(Degraded(self.degraded, self.reported_drops))
