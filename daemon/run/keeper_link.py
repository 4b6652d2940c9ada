"""The daemon's end of a run keeper: start it, talk to it, hear about its node processes."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import attrs
import trio
import zmq

from daemon.keeper.logs import Tee
from daemon.keeper.process import Keeper
from daemon.model import pids
from daemon.model.errors import KeeperLost, NodeSpawnFailed
from daemon.model.keeper_messages import (
    KEEPER_HUNG_S,
    Attach,
    FromKeeper,
    KeeperMessageError,
    Ping,
    Quit,
    State,
    ToKeeper,
    decode,
    encode,
)
from daemon.model.retry import Backoff, RetryExhausted
from daemon.model.settings import current
from daemon.run.retry import retry_async
from daemon.run.zmq_trio import Frames, SocketOwner

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
# The keeper answers every ping: silent for this long (three missed beats and a margin),
# it is taken as dead and its run fails, unless its process is known to live. A keeper
# process that exits is noticed at once (`lifecycle` waits on it); this bound covers a
# keeper whose process cannot be watched.
KEEPER_SILENCE_S = 4.0
ATTACH_ANSWER_S = 0.25
ATTACH_POLICY = Backoff(attempts=20, initial=0.02, max_delay=0.5, deadline=10.0)
EXPECTED_MISSES = 2  # asks of a new keeper logged at DEBUG (its start takes them)
# re-adoption asks briefly: a keeper that is gone stays gone
PROBE_POLICY = Backoff(attempts=4, initial=0.05, max_delay=0.2, deadline=1.5)


class KeeperSilent(Exception):
    """The keeper did not answer one attach (it may still be starting)."""


OnEvent = Callable[[FromKeeper], None]
Alive = Callable[[], bool]


class KeeperPort(Protocol):
    """What a run needs of its keeper (a `KeeperLink`, or a fake in tests)."""

    def send(self, message: ToKeeper) -> None:
        """Queue a message for the keeper; never blocks."""

    async def serve(self) -> None:
        """Pump messages and the heartbeat until cancelled; `KeeperLost` when it falls silent."""

    async def attach(self) -> State:
        """The keeper's state once it answers; `NodeSpawnFailed` when it never does."""

    def quit(self) -> None:
        """Tell the keeper to end and let go of it."""


@attrs.define(eq=False)
class KeeperLink:
    """A DEALER to one keeper, owned by one task, with a heartbeat."""

    owner: SocketOwner
    on_event: OnEvent
    state: State | None = None
    attached: trio.Event = attrs.field(factory=trio.Event)
    last_heard: float | None = None  # trio time of the keeper's last message
    unanswered: int = 0  # pings sent since then
    # whether the keeper's process still lives: set for one this daemon started, or from
    # the pid an adopted one tells in its State; None: unknown, silence alone decides
    alive: Alive | None = None
    stalled: bool = False  # silent past KEEPER_SILENCE_S with its process alive

    @classmethod
    def connect(
        cls, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, on_event: OnEvent
    ) -> KeeperLink:
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        return cls(owner=SocketOwner(socket, name=f"keeper link {endpoint}"), on_event=on_event)

    def send(self, message: ToKeeper) -> None:
        if not self.owner.send([encode(message)]):
            # a keeper this far behind is hung: the heartbeat fails the run soon after
            log.error("keeper link: could not queue a %s for the keeper", type(message).__name__)

    def _on_frames(self, frames: Frames) -> None:
        try:
            message = decode(frames[-1])
        except KeeperMessageError as exc:
            log.warning("keeper link: dropped %d bytes: %s", len(frames[-1]), exc)
            return
        if not isinstance(message, FromKeeper):
            log.warning("keeper link: dropped a %s, which only a daemon sends", type(message))
            return
        now = trio.current_time()
        if self.stalled and self.last_heard is not None:
            self.stalled = False
            log.info("run keeper answers again after %.1fs", now - self.last_heard)
        self.last_heard = now
        self.unanswered = 0
        if isinstance(message, State):
            self.state = message
            if self.alive is None and message.pid > 0:
                self.alive = functools.partial(pids.alive, message.pid)
            self.attached.set()
        self.on_event(message)

    async def serve(self) -> None:
        """Pump the socket and beat the heart until cancelled; `KeeperLost` when it is silent."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.owner.serve, self._on_frames)
            while True:
                self.send(Ping())
                self.unanswered += 1
                await trio.sleep(HEARTBEAT_S)
                # before its first answer, `attach` and its own deadline govern
                if self.last_heard is None:
                    continue
                silent = trio.current_time() - self.last_heard
                # both: a daemon loop that stalled sent no pings, so it blames no keeper
                if silent > KEEPER_SILENCE_S and self.unanswered > KEEPER_SILENCE_S / HEARTBEAT_S:
                    self._judge_silence(silent)

    def _judge_silence(self, silent: float) -> None:
        """A keeper silent past KEEPER_SILENCE_S: lost, unless its process lives; then
        stalled, and hung (lost too) only past KEEPER_HUNG_S."""
        if self.alive is None or not self.alive():
            raise KeeperLost(f"run keeper lost: no answer for {silent:.1f}s")
        if silent > KEEPER_HUNG_S:
            raise KeeperLost(f"run keeper hung: its process lives but gave no answer for "
                             f"{silent:.1f}s")  # fmt: skip
        if not self.stalled:
            self.stalled = True
            log.warning("run keeper silent for %.1fs, its process alive: waiting for it up "
                        "to %.0fs (its nodes run on)", silent, KEEPER_HUNG_S)  # fmt: skip

    async def attach(self, policy: Backoff | None = None, *, quiet: bool = False) -> State:
        """Ask for the keeper's state until it answers (SPEC 7.5); raise when it never does."""
        self.attached = trio.Event()

        async def ask() -> State:
            self.send(Attach())
            with trio.move_on_after(ATTACH_ANSWER_S):
                await self.attached.wait()
            if self.state is None or not self.attached.is_set():
                raise KeeperSilent("no answer")
            return self.state

        try:
            return await retry_async(
                ask,
                what="reaching the run keeper",
                policy=policy or ATTACH_POLICY,
                retry_on=(KeeperSilent,),
                # a keeper just spawned answers once its interpreter has started: about
                # 0.3 s, past the first asks
                expected_misses=(policy or ATTACH_POLICY).attempts if quiet else EXPECTED_MISSES,
            )
        except RetryExhausted as exc:
            raise NodeSpawnFailed("keeper", f"the run keeper did not answer: {exc}") from exc

    def quit(self) -> None:
        """Tell the keeper to end, then close; called once the owner task is gone."""
        with contextlib.suppress(zmq.ZMQError):
            self.owner.socket.send(encode(Quit()), zmq.NOBLOCK)
        self.owner.socket.close(linger=1000)


async def start_keeper_process(
    endpoint: str, grace: float, log_path: Path, ledger: Path | None = None
) -> trio.Process:
    """A keeper in its own session, so it outlives the daemon (SPEC 7.4).

    `ledger`: where it appends each node's own exit, for a recovery after its end.
    """
    how = {"endpoint": endpoint, "grace": grace, "settings": current().values()}
    config = json.dumps({**how, "ledger": None if ledger is None else str(ledger)})
    argv = [sys.executable, "-m", "daemon.keeper", config]
    log_file: IO[bytes] | None = None
    try:
        log_file = log_path.open("ab")
    except OSError as exc:
        # its log is side work: the run goes on without it (SPEC 7.3)
        log.warning("keeper log %s: %s", log_path, exc)
    output = log_file if log_file is not None else subprocess.DEVNULL
    try:
        return await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
    finally:
        if log_file is not None:
            log_file.close()


def start_keeper_thread(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, grace: float, tee: Tee | None
) -> threading.Thread:
    """A keeper inside this process (`flow run`: no daemon to outlive)."""
    keeper = Keeper.bind(context, endpoint, grace, tee=tee, in_thread=True)
    keeper.subreaper = True  # `flow run`'s process takes back what its nodes orphan
    thread = threading.Thread(target=keeper.serve, name="flow-keeper", daemon=True)
    thread.start()
    return thread


async def probe_keeper(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, *, quiet: bool = False
) -> State | None:
    """The state of a keeper that outlived a daemon, or None when none answers; `quiet`:
    its misses at DEBUG (a stalled keeper asked again and again)."""
    link = KeeperLink.connect(context, endpoint, on_event=lambda message: None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.owner.serve, link._on_frames)
            try:
                state: State | None = await link.attach(PROBE_POLICY, quiet=quiet)
            except NodeSpawnFailed:
                state = None
            nursery.cancel_scope.cancel()
    finally:
        link.owner.socket.close(linger=0)
    return state
