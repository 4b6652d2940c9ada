"""The start barrier's wait: each node connects within its own `connect_timeout` (or the
`start_timeout` setting), and a miss names the node and the two ways to give it longer;
a node that ended well without ever connecting is named too."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from daemon.run.slot import NodeSlot


def connect_timeout(slot: NodeSlot, default: float) -> float:
    """How long this node has to connect: its YAML `connect_timeout`, else the setting."""
    own = slot.spec.connect_timeout
    return default if own is None else own


async def wait_connected(slots: Sequence[NodeSlot], default: float) -> list[NodeSlot]:
    """Wait until every slot has connected (or ended); the slots that missed their own
    deadline, counted from now (empty: all in time). Returns at the first miss."""
    began = trio.current_time()
    deadlines = {slot.id: began + connect_timeout(slot, default) for slot in slots}
    for slot in sorted(slots, key=lambda s: deadlines[s.id]):
        with trio.move_on_at(deadlines[slot.id]):
            await slot.settled.wait()
        if not slot.settled.is_set():
            break
    now = trio.current_time()
    return [s for s in slots if not s.settled.is_set() and now >= deadlines[s.id]]


def late_message(late: Sequence[NodeSlot], default: float) -> str:
    """`nodes did not connect within 30s: slow (give a node longer with ...)`."""
    groups: dict[float, list[str]] = {}
    for slot in late:
        groups.setdefault(connect_timeout(slot, default), []).append(slot.id)
    missed = "; ".join(f"within {t:g}s: {', '.join(ids)}" for t, ids in groups.items())
    return (
        f"nodes did not connect {missed} (a node connects when it creates its Node(): a "
        "program that never does wants `connects: false` in its YAML; give a slow node longer "
        "with `connect_timeout: 60s`, or every node with the start_timeout setting: "
        "FLOW_START_TIMEOUT=60s or start_timeout in $FLOW_HOME/config.toml; see flow config)"
    )


def ended_unconnected(slot: NodeSlot) -> str | None:
    """Why a node that exited 0 without ever connecting is worth a word (a Python script
    that forgot its Node(): its run succeeded and its receivers got nothing); else None."""
    if not slot.spec.connects or slot.spec.is_dynamic or slot.connected.is_set():
        return None
    if slot.exit_code != 0 or slot.stop_requested:
        return None
    return (f"node {slot.id}: ended without connecting (a node connects when it creates "
            "its Node(); a program that is not a node wants `connects: false`)")  # fmt: skip
