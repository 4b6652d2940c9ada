"""Parameters in the daemon: their rows in `state.db`, the values a node gets at hello, and
delivering a change to a running node and waiting for its answer (docs/parameters.md).

A change is stored only once the node took it, so `flow param get` never shows a value the
node does not hold (dora #1798 reports success for a value nobody got). Its answer comes on
the node channel as `param_ack` with the change's token; a late one (the node took it just
as the wait ran out) is still stored, with an event saying so, because the node holds it.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
from collections import OrderedDict

import attrs
import trio

from daemon.model import params as model
from daemon.model.errors import ParamNotSet, StateWriteFailed
from daemon.run.slot import NodeSlot
from daemon.run.supervisor import Run
from daemon.store import Store
from node_sdk import channel

log = logging.getLogger(__name__)

MAX_LATE = 256  # changes given up on whose late answer is still stored (oldest forgotten)


def changed(store: Store, run_id: str, node_id: str) -> dict[str, str | None]:
    """The rows `flow param set|delete` wrote for one node: key -> JSON text, None deleted."""
    rows = store.db.execute(
        "SELECT key, value FROM params WHERE run_id = ? AND node_id = ?", (run_id, node_id)
    ).fetchall()
    return {str(row["key"]): row["value"] for row in rows}


def current(store: Store, run_id: str, slot: NodeSlot) -> dict[str, str]:
    """A node's values now: its YAML `params:`, then the stored changes."""
    return model.current(slot.spec.params, changed(store, run_id, slot.id))


def put(store: Store, run_id: str, node_id: str, key: str, text: str | None) -> None:
    try:
        with store.db:
            store.db.execute("BEGIN IMMEDIATE")
            store.db.execute(
                "INSERT OR REPLACE INTO params (run_id, node_id, key, value) VALUES (?, ?, ?, ?)",
                (run_id, node_id, key, text),
            )
    except sqlite3.Error as exc:
        raise StateWriteFailed(f"state store {store.path}: parameter write failed: {exc}") from exc


def greeting(store: Store, run_id: str, slot: NodeSlot) -> list[channel.Message]:
    """The `param` messages a node gets between its hello and `start`: its current values."""
    try:
        values = current(store, run_id, slot)
    except sqlite3.Error as exc:  # a lost store: the YAML's values, and one line about it
        log.error("run %s: node %s: stored parameters unreadable: %s", run_id, slot.id, exc)
        values = dict(slot.spec.params)
    return [channel.Param(key, text) for key, text in values.items()]


async def _first_of(*events: trio.Event) -> None:
    """Return once any of `events` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


def _ending(slot: NodeSlot) -> str:
    """How a node's process ended, in the words of `flow param set`'s error."""
    code = slot.exit_code
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    if code is not None:
        return f"exited (code {code})"
    return f"ended ({slot.spawn_error})" if slot.spawn_error else "ended"


@attrs.define(eq=False)
class _Waiting:
    run: Run
    node: str
    key: str
    text: str | None
    answered: trio.Event = attrs.field(factory=trio.Event)
    error: str | None = None


@attrs.define(eq=False)
class ParamDesk:
    """The changes sent to nodes and not answered yet, by token (one per daemon)."""

    store: Store
    waiting: dict[int, _Waiting] = attrs.field(factory=dict)
    late: OrderedDict[int, _Waiting] = attrs.field(factory=OrderedDict)
    last_token: int = 0
    unknown_acks: dict[tuple[str, str], int] = attrs.field(factory=dict)  # (run, node) -> count

    async def deliver(
        self, run: Run, slot: NodeSlot, key: str, text: str | None, timeout_s: float
    ) -> None:
        """Send a change to a running node and store it once taken; ParamNotSet when the
        node refused it (its reason) or did not answer within `timeout_s`."""
        if not slot.spec.connects:
            # not malformed input (2): a node that cannot take one (1, as one not running)
            raise ParamNotSet(slot.id, key, "it is a process node, not an SDK node: it "
                              "cannot take parameters")  # fmt: skip
        if not (slot.alive or slot.attached) or not slot.connected.is_set():
            raise ParamNotSet(slot.id, key, "the node is not running (nothing was sent)")
        self.last_token += 1
        token = self.last_token
        waiting = self.waiting[token] = _Waiting(run, slot.id, key, text)
        ended = slot.exited  # this generation's end: the next generation gets a new event
        timeout_ms = max(1, int(timeout_s * 1000))
        try:  # run.send relays it to a node on another machine, whose answer comes back so
            if not run.send(slot.identity(), channel.Param(key, text, token, timeout_ms)):
                raise ParamNotSet(slot.id, key, "the node channel is full, or the node's "
                                  "machine is not connected (nothing was sent)")
            with trio.move_on_after(timeout_s):
                await _first_of(waiting.answered, ended)
        finally:
            self.waiting.pop(token, None)
        if not waiting.answered.is_set() and ended.is_set():  # no answer can come any more
            raise ParamNotSet(slot.id, key, f"node {slot.id} {_ending(slot)} before it took "
                              "the value (nothing changed)")  # fmt: skip
        if not waiting.answered.is_set():
            self._remember_late(token, waiting)
            raise ParamNotSet(
                slot.id, key, f"the node did not answer within {timeout_s:g} s (a node busy "
                "that long drops the change unseen: nothing changed)",
            )  # fmt: skip
        if waiting.error is not None:
            raise ParamNotSet(slot.id, key, f"refused by the node: {waiting.error}")
        put(self.store, run.id, slot.id, key, text)

    def _unknown(self, run_id: str, node_id: str, token: int) -> None:
        """One line for the 1st, 2nd, 4th, 8th, ... unknown answer of a node: a node that
        sends them in a loop must not fill daemon.log."""
        if len(self.unknown_acks) >= MAX_LATE and (run_id, node_id) not in self.unknown_acks:
            self.unknown_acks.clear()  # bounded; a node's count starts over at worst
        count = self.unknown_acks.get((run_id, node_id), 0) + 1
        self.unknown_acks[(run_id, node_id)] = count
        if count & (count - 1) == 0:
            log.warning("run %s: node %s: answer to unknown parameter change %d ignored "
                        "(%d so far)", run_id, node_id, token, count)  # fmt: skip

    def _remember_late(self, token: int, waiting: _Waiting) -> None:
        self.late[token] = waiting
        while len(self.late) > MAX_LATE:
            self.late.popitem(last=False)

    def on_ack(self, run_id: str, node_id: str, ack: channel.ParamAck) -> None:
        """A node's answer (node channel task): wakes the waiting request, or stores a late
        change the node took after all."""
        waiting = self.waiting.get(ack.token)
        if waiting is not None and (waiting.run.id, waiting.node) == (run_id, node_id):
            waiting.error = ack.error
            waiting.answered.set()
            return
        late = self.late.pop(ack.token, None)
        if late is None or (late.run.id, late.node) != (run_id, node_id):
            self._unknown(run_id, node_id, ack.token)
            return
        if ack.error is not None:
            return  # refused late: nothing changed, as the request said
        what = f"parameter {late.key!r} taken after the wait ran out: stored"
        log.warning("run %s: node %s: %s", run_id, node_id, what)
        try:
            put(self.store, run_id, node_id, late.key, late.text)
            late.run.record_event(node_id, "param_late", what)
        except StateWriteFailed as exc:
            late.run.mark_degraded(f"state store: {exc}")
