"""The coordinator's copies of remote nodes' logs, which `flow logs` reads like any log file
(docs/cluster.md, "Logs"): fetched on demand, or kept live while a follower asks.

A plain `flow logs` fetches a node's last LOG_TAIL_BYTES into `runs/<id>/logs/remote/` at
each call. `flow logs -f` (and an attached `flow start`) asks with `follow`: the member then
forwards the log's new lines (daemon/cluster/log_forward.py) and they are appended to the
copy, for as long as a follower renews its ask. A machine lost meanwhile is one line in
the copy; so is its return.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio

from daemon.cluster.coordinator import CONNECTED, LEFT, LOST
from daemon.files import write_atomic
from daemon.model.cluster_messages import Carry
from daemon.model.logformat import LogRecord
from node_sdk import paths

log = logging.getLogger(__name__)

ANSWER_S: Final = 3.0  # a member's answer to a fetch or the start of a follow
FOLLOW_LEASE_S: Final = 10.0  # a follow no follower asked for again within this ends
RENEW_S: Final = 2.0  # the member is told again this often (its own lease: LEASE_S there)
COPY_MAX_BYTES: Final = 4 * 1024 * 1024  # a live copy is rotated to `<node>.log.1` past it


@attrs.define(eq=False)
class _Live:
    """One node's log being forwarded into its copy here."""

    machine: str
    path: Path
    asked_until: float  # trio clock
    answered: trio.Event = attrs.field(factory=trio.Event)  # the member's first chunk came
    away: bool = False  # its machine is lost (said once in the copy)


@attrs.define(eq=False)
class RemoteLogs:
    """The remote log copies of this coordinator's runs; `serve` renews the follows."""

    home: Path
    send_carry: Callable[[str, Carry], bool]
    live: dict[tuple[str, str], _Live] = attrs.field(factory=dict)  # (run, node)
    _fetches: dict[tuple[str, str, str], trio.MemorySendChannel[str]] = attrs.field(factory=dict)

    async def copy(self, run_id: str, machine: str, node_id: str, *, follow: bool) -> str:
        """The path of the node's log copy here: live while followed, else fetched now."""
        path = paths.log_dir(self.home, run_id) / "remote" / f"{node_id}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the CLI then finds no file: it shows nothing of it
            log.warning("cluster: the log copy %s: %s", path, exc)
        live = self.live.get((run_id, node_id))
        if live is not None and live.machine == machine:
            if follow:
                live.asked_until = trio.current_time() + FOLLOW_LEASE_S
            with trio.move_on_after(ANSWER_S):  # another call is starting it right now
                await live.answered.wait()
            return str(path)
        if follow:
            await self._start(run_id, machine, node_id, path)
            return str(path)
        text = await self._fetch(run_id, machine, node_id)
        if text is None:
            text = _note(f"machine {machine} did not answer: the log of {node_id} was not "
                         "fetched")  # fmt: skip
        _replace(path, text)
        return str(path)

    async def _start(self, run_id: str, machine: str, node_id: str, path: Path) -> None:
        key = (run_id, node_id)
        live = self.live[key] = _Live(machine, path, trio.current_time() + FOLLOW_LEASE_S)
        if self.send_carry(machine, Carry(run_id, "follow", "start", node_id)):
            with trio.move_on_after(ANSWER_S):
                await live.answered.wait()
        if not live.answered.is_set():
            del self.live[key]
            _replace(path, _note(f"machine {machine} did not answer: the log of {node_id} "
                                 "is not followed"))  # fmt: skip

    async def _fetch(self, run_id: str, machine: str, node_id: str) -> str | None:
        """The member reads the node's log tail and sends it; None when it does not."""
        key = (run_id, machine, node_id)
        if key in self._fetches:
            return None  # another `flow logs` is asking for it right now
        send, receive = trio.open_memory_channel[str](1)
        self._fetches[key] = send
        try:
            if not self.send_carry(machine, Carry(run_id, "logs", "", node_id)):
                return None
            with trio.move_on_after(ANSWER_S):
                return await receive.receive()
            return None
        finally:
            del self._fetches[key]

    def on_carry(self, machine: str, carry: Carry) -> bool:
        """A member's fetched tail or forwarded lines; False for any other message."""
        if carry.kind == "logs":
            waiting = self._fetches.get((carry.run, machine, carry.ident))
            if waiting is not None:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    waiting.send_nowait(carry.body)
            return True
        if carry.kind != "loglines":
            return False
        live = self.live.get((carry.run, carry.ident))
        if live is None or live.machine != machine:
            return True  # a follow ended here: the member's lease runs out by itself
        if not live.answered.is_set():
            _replace(live.path, carry.body)
            live.answered.set()
        else:
            self._append(live, carry.body)
        return True

    def on_state(self, machine: str, state: str) -> None:
        """A machine lost: one line in each followed copy of its nodes; back: one more, and
        its follows renewed at once (it resumes where it stopped)."""
        for (run_id, node_id), live in self.live.items():
            if live.machine != machine:
                continue
            if state in (LOST, LEFT) and not live.away:
                live.away = True
                self._append(live, _note(f"machine {machine} {state}: the log of {node_id} "
                                         f"is not forwarded while it is {state}"))  # fmt: skip
            elif state == CONNECTED and live.away:
                live.away = False
                self._append(live, _note(f"machine {machine} back: forwarding the log of "
                                         f"{node_id} again"))  # fmt: skip
                self.send_carry(machine, Carry(run_id, "follow", "renew", node_id))

    async def serve(self) -> None:
        while True:
            await trio.sleep(RENEW_S)
            now = trio.current_time()
            for (run_id, node_id), live in list(self.live.items()):
                if now > live.asked_until:
                    del self.live[(run_id, node_id)]
                elif not live.away:
                    self.send_carry(live.machine, Carry(run_id, "follow", "renew", node_id))

    def _append(self, live: _Live, text: str) -> None:
        """Lines at the end of the copy; past COPY_MAX_BYTES it is renamed to `.1` first
        (a follower reads the renamed file's end, then the new one)."""
        try:
            if live.path.exists() and live.path.stat().st_size + len(text) > COPY_MAX_BYTES:
                os.replace(live.path, live.path.with_name(live.path.name + ".1"))
            fd = os.open(live.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as copy:
                copy.write(text)
        except OSError as exc:
            log.warning("cluster: the log copy %s: %s", live.path, exc)


def _replace(path: Path, text: str) -> None:
    """The copy made anew (a full disk is a log line: `flow logs` goes on without it)."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        log.warning("cluster: the log copy %s: %s", path, exc)


def _note(text: str) -> str:
    """One log line of flow's own, in a copy (shown like a node's WARNING)."""
    return LogRecord(time.time(), "log", text, level="WARNING", logger="flow").to_json() + "\n"
