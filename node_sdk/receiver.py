"""The background thread of a node: its daemon DEALER, and its inputs while the node is busy.

It polls the DEALER and an inproc PAIR shared with the node's own thread, and takes the
input sockets over when user code keeps the node's thread away from `next()`; the rules of
that hand-off and of credits are in ownership.py. It decodes the daemon's messages with
the node channel's one decoder (channel.py): `stop` and `upstream_done` go to the inbox,
`add_input` it applies itself (it may own the inputs), `wire`/`unwire` go to the node's
thread, which owns the outputs (wiring.py), and `receiver_down` is kept for the node's end
(flush.py); one gone for good also goes to the node's thread, which gives its edges up. A
static node's lives until the node's output sockets have closed, so that word still comes
in while they deliver what they queued.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import zmq

from node_sdk import channel
from node_sdk.config import DataInput, NodeConfig, is_tcp
from node_sdk.errors import DaemonUnreachable, NodeError
from node_sdk.events import StopCause
from node_sdk.flush import EVERY_RECEIVER
from node_sdk.inbox import Inbox
from node_sdk.inputs import Inputs
from node_sdk.leases import Releases
from node_sdk.ownership import CREDIT, GIVE, HANDED, QUIT, SEND, WAKE, Ownership
from node_sdk.wiring import ReceiverHooks

log = logging.getLogger(__name__)

# How often the inputs' owner is checked: a node's thread away from `next()` for a whole
# interval loses them to this thread; one waiting in `next()` is looked at less often.
CHECK_BUSY_S: Final = 0.02
CHECK_WAITING_S: Final = 0.1
DEALER_LINGER_MS: Final = 1000


class Receiver(threading.Thread):
    """Owns `dealer` and the PAIR end `commands` once started; the inputs when it takes them."""

    def __init__(
        self,
        inbox: Inbox,
        inputs: Inputs,
        ownership: Ownership,
        dealer: zmq.Socket[Any],
        commands: zmq.Socket[Any],
        releases: Releases,
        hooks: ReceiverHooks | None = None,
        links: Any = None,
    ) -> None:
        super().__init__(name="flow-receiver", daemon=True)
        self._ownership = ownership
        self._releases = releases
        self._hooks = hooks  # live wiring and the stats report (wiring.py)
        self._inbox = inbox
        self._inputs = inputs
        self._dealer = dealer
        self._commands = commands
        self._owned: zmq.Poller | None = None  # control and input sockets, while ours
        # links.Links of the tcp:// inputs: their monitors are polled here, always
        self._links = links
        self._control = zmq.Poller()
        # the node's thread was last seen in next() or sending (the report's `away_ms`)
        self._active_at = time.monotonic()
        self._seen: tuple[int, int] = (-1, -1)  # (returns from next(), messages sent)

    def run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # a bug here must not leave the node waiting forever
            self._inbox.push_error(f"the receiver thread failed: {exc!r}")
            self._wake()
        finally:
            # not the inputs: the node's thread may be polling them; it closes them itself
            self._dealer.close(linger=DEALER_LINGER_MS)
            self._commands.close(linger=0)
            if self._links is not None:
                self._links.close()

    def _serve(self) -> None:
        control = self._control
        control.register(self._commands, zmq.POLLIN)
        control.register(self._dealer, zmq.POLLIN)
        links = self._links
        for monitor in links.monitors if links is not None else ():
            control.register(monitor, zmq.POLLIN)
        inputs, hooks, ownership = self._inputs, self._hooks, self._ownership
        now = time.monotonic()
        next_report = now + hooks.every_s if hooks else None
        next_check, seen = now + CHECK_BUSY_S, ownership.exits
        while True:
            self._releases.flush()  # leases let go of while the node's thread is busy
            now = time.monotonic()
            if next_report is not None and now >= next_report:
                assert hooks is not None
                self._report(hooks)
                next_report = now + hooks.every_s  # never closer than that, late or not
            if self._owned is None and now >= next_check:
                if ownership.take(seen):
                    self._own()
                    if self._inbox.credit_asked:
                        # a CREDIT the node's thread sent may have come after a GIVE: ours now
                        inputs.pay_credits()
                seen = ownership.exits
                next_check = now + (CHECK_WAITING_S if ownership.inside else CHECK_BUSY_S)
            wake_at = next_report
            if self._owned is None:
                wake_at = next_check if wake_at is None else min(wake_at, next_check)
            cut = None if links is None else links.next_deadline()
            if cut is not None:
                if cut <= now:
                    # a broken link's sources are due to close; the inputs' owner does it
                    # once it has read them empty (links.py): us, or the node's thread
                    if self._owned is None or inputs.drain_all():
                        self._wake()
                    cut = now + CHECK_BUSY_S  # the owner may be busy: look again then
                wake_at = cut if wake_at is None else min(wake_at, cut)
            silent = self._inbox.next_deadline()  # dora's input_timeout (inbox.py)
            if silent is not None:
                if silent <= now and self._inbox.expire(now):
                    self._wake()
                silent = self._inbox.next_deadline()
                if silent is not None:
                    wake_at = silent if wake_at is None else min(wake_at, silent)
            # never negative (zmq's "forever"): a cut may have been added since `now`
            timeout_ms = None if wake_at is None else max(0, int((wake_at - now) * 1000) + 1)
            poller = control if self._owned is None else self._owned
            for sock, _ in poller.poll(timeout_ms):
                if sock is self._commands:
                    if not self._commands_ready():
                        return
                elif sock is self._dealer:
                    self._daemon_ready()
                elif links is not None and sock in links.monitors:
                    links.on_event(sock)
                elif self._owned is not None:
                    inputs.drain_socket(sock)

    def _own(self) -> None:
        poller = zmq.Poller()
        poller.register(self._commands, zmq.POLLIN)
        poller.register(self._dealer, zmq.POLLIN)
        for monitor in self._links.monitors if self._links is not None else ():
            poller.register(monitor, zmq.POLLIN)
        for sock in self._inputs.sockets:
            poller.register(sock, zmq.POLLIN)
        self._owned = poller

    def _wake(self) -> None:
        """Tell the node's thread to look again (it may wait in zmq poll, not on the inbox)."""
        with contextlib.suppress(zmq.ZMQError):  # a full pipe: a wake is queued already
            self._commands.send(WAKE, zmq.NOBLOCK)

    def _commands_ready(self) -> bool:
        """Run every queued command; False on quit."""
        while True:
            try:
                command = self._commands.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            verb = command[:1]
            if verb == CREDIT:
                if self._owned is not None:  # else the node's thread pays, owning them
                    self._inputs.pay_credits()
            elif verb == GIVE:
                if self._owned is not None:  # the node's thread pays what is owed, owning them
                    self._owned = None
                    self._ownership.give_back()
                with contextlib.suppress(zmq.ZMQError):
                    self._commands.send(HANDED, zmq.NOBLOCK)
            elif verb == SEND:
                # a full pipe means the daemon is gone: nothing to tell it
                with contextlib.suppress(zmq.Again):
                    self._dealer.send(command[1:], zmq.NOBLOCK)
            elif verb == QUIT:
                return False

    def _daemon_ready(self) -> None:
        while True:
            try:
                raw = self._dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = channel.decode(raw)
            except NodeError as exc:
                log.warning("dropped a message from the daemon: %s", exc)
                continue
            if isinstance(message, channel.ReceiverDown):
                self.word(message)
            elif isinstance(message, channel.LIVE):
                self.live(message)
            else:
                if isinstance(message, channel.Param) and self._hooks is not None:
                    if self._hooks.param is not None:
                        self._hooks.param(message)
                else:
                    if isinstance(message, channel.Stop) and message.everyone:
                        self._word(EVERY_RECEIVER, False)  # the run stops: none comes back
                    handle_control(self._inbox, message)
                    if self._owned is not None and self._inbox.backstops:
                        self._inputs.drain_all()  # ours: a backstop closes on an empty read
                self._wake()

    def _word(self, node: str, restarting: bool) -> None:
        """The daemon's word on a receiver of the node's outputs (flush.py)."""
        if self._hooks is not None and self._hooks.receivers is not None:
            # a plain dict write: the node's thread reads it while it ends
            self._hooks.receivers[node] = restarting

    def word(self, message: channel.ReceiverDown) -> None:
        """`receiver_down`: kept for the node's end; one gone for good also goes to the
        node's thread, which gives its edges up (wiring.py), as it applies `unwire`."""
        self._word(message.node, message.restarting)
        if not message.restarting and self._hooks is not None:
            self._hooks.rewires.append(message)

    def _report(self, hooks: ReceiverHooks) -> None:
        """The `stats` report (the heartbeat of a dynamic node)."""
        report, now, own = hooks.report(), time.monotonic(), self._ownership
        seen = (own.exits, sum(out.get("sent", 0) for out in report.outputs.values()))
        if own.inside or seen != self._seen:
            self._seen, self._active_at = seen, now
        away_ms = int((now - self._active_at) * 1000)
        message = channel.Stats(report.inputs, report.outputs, away_ms)
        # a full pipe means the daemon is gone: nothing to tell it
        with contextlib.suppress(zmq.Again):
            self._dealer.send(channel.encode(message), zmq.NOBLOCK)

    def live(
        self, message: channel.Wire | channel.Unwire | channel.AddInput | channel.ReceiverDown
    ) -> None:
        """`add_input` here; `wire`/`unwire` to the node's thread, which owns the outputs;
        a `receiver_down` that came before `start` as it would have after."""
        if isinstance(message, channel.ReceiverDown):
            self.word(message)
            return
        hooks = self._hooks
        if hooks is None:
            return
        if isinstance(message, channel.AddInput):
            try:
                self._add_input(hooks, message.input)
            except NodeError as exc:
                log.warning("live wiring refused: %s", exc)
        else:
            hooks.rewires.append(message)

    def _add_input(self, hooks: ReceiverHooks, spec: DataInput) -> None:
        if self._inputs.has(spec.id):
            self._inbox.add_input(spec)  # an input we have: only more sources for it
            return
        sock = hooks.bind_input(spec)  # bound before the inbox knows it: a failure leaves none
        self._inbox.add_input(spec)
        self._inputs.add(spec, sock)
        if self._owned is not None:
            self._owned.register(sock, zmq.POLLIN)
        if self._links is not None and is_tcp(spec.endpoint):
            monitor = self._links.watch(spec.id, sock)
            for poller in (self._control, self._owned):
                if poller is not None:
                    poller.register(monitor, zmq.POLLIN)
        self._wake()  # the node's thread polls its inputs: it must poll this one too


def handle_control(inbox: Inbox, message: channel.Message) -> None:
    """Act on one daemon message (`stop`, `upstream_done`); others (a late `start`) are ignored."""
    if isinstance(message, channel.Stop):
        inbox.restart_requested |= message.restart
        inbox.push_stop(StopCause.STOP_REQUESTED)
    elif isinstance(message, channel.UpstreamDone):
        inbox.close_source(message.input, message.source, message.generation)


def await_start(
    dealer: zmq.Socket[Any],
    cfg: NodeConfig,
    inbox: Inbox,
    timeout_s: float,
    on_param: Callable[[channel.Param], None] | None = None,
) -> tuple[list[channel.Wire | channel.Unwire | channel.AddInput | channel.ReceiverDown], bool]:
    """Say hello on `dealer`, wait for `start` -> the live wiring messages that came before
    it (the node applies them once its receiver exists), and False when STOP came instead
    (the run stops before it started: the node's first event is STOP, and no timer of its
    ticks). Parameters go to `on_param` at once (the current values come before `start`).
    Before the thread starts."""
    early: list[channel.Wire | channel.Unwire | channel.AddInput | channel.ReceiverDown] = []
    dealer.send(channel.encode(channel.Hello(cfg.run, cfg.node, cfg.generation, os.getpid())))
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not dealer.poll(int(remaining * 1000) + 1):
            raise DaemonUnreachable(cfg.daemon, timeout_s)
        try:
            message = channel.decode(dealer.recv())
        except NodeError as exc:
            log.warning("dropped a message from the daemon: %s", exc)
            continue
        if isinstance(message, channel.Start):
            return early, True
        if isinstance(message, (*channel.LIVE, channel.ReceiverDown)):
            early.append(message)
            continue
        if isinstance(message, channel.Param):
            if on_param is not None:
                on_param(message)
            continue
        handle_control(inbox, message)
        if isinstance(message, channel.Stop):
            return early, False  # the run stops before it started: the node sees STOP first
