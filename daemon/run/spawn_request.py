"""The keeper's `Spawn` request for one generation of a node: its argv, environment and
configuration, and the edges of a `send_stdout_as` output, which the keeper feeds; and
the `WireStdout` of a live edge added to such an output while its node runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from daemon.model import routing
from daemon.model.descriptor import Dataflow
from daemon.model.keeper_messages import Edge, Spawn, StdoutAs, WireStdout
from daemon.model.settings import current as settings
from daemon.run.placement import PlacedRun
from daemon.run.slot import NodeSlot
from node_sdk import channel, dora_compat, paths
from node_sdk.config import Edge as WireEdge
from node_sdk.config import edge_json


class _Run(Protocol):
    """What a spawn request is made of (the run's `Run`)."""

    id: str
    dataflow: Dataflow
    home: Path
    base_env: dict[str, str]
    extra_env: dict[str, str]
    released: bool
    live_edges: list[tuple[str, channel.Wire]]
    placed: PlacedRun | None


def spawn_request(
    run: _Run, slot: NodeSlot, config: dict[str, Any], endpoints: Mapping[tuple[str, str], str]
) -> Spawn:
    """Start `slot`'s current generation with `config` (its FLOW_NODE_CONFIG); `endpoints`:
    (node, input) -> the endpoint that input binds."""
    remote = run.placed is not None and run.placed.is_remote(slot.id)  # its member's env
    base = {**({} if remote else run.base_env), "FLOW_LOG_LEVEL": settings().log_level}
    env = routing.node_environment(run.dataflow, slot.spec, base, run.extra_env)
    env["FLOW_NODE_CONFIG"] = json.dumps(config)
    env["FLOW_DATAFLOW"] = run.id
    # `from dora import Node` reads flow's dora module (node_sdk/dora_compat)
    env["PYTHONPATH"] = dora_compat.with_folder(env.get("PYTHONPATH"))
    return Spawn(
        node=slot.id,
        generation=slot.generation,
        argv=tuple(routing.node_argv(slot.spec)),
        env=env,
        cwd=str(run.dataflow.folder),
        log=str(paths.node_log(run.home, run.id, slot.id)),
        stdout_as=_stdout_as(run, slot, endpoints),
        log_max_bytes=slot.spec.log_max_bytes,
        cpu_affinity=slot.spec.cpu_affinity,
        fork=slot.spec.spawn == "fork",
    )


def _stdout_as(
    run: _Run, slot: NodeSlot, endpoints: Mapping[tuple[str, str], str]
) -> StdoutAs | None:
    """Where the keeper sends the node's stdout lines, if it has a `send_stdout_as` output."""
    output = slot.spec.send_stdout_as
    if output is None:
        return None
    placement = run.placed.placement if run.placed is not None else None
    edges = routing.output_edges(run.dataflow, slot.spec, endpoints, placement)
    lines_to = edges[output] + [  # and a recorder's (`--record`)
        edge_json(w.edge) for sender, w in run.live_edges if sender == slot.id]  # fmt: skip
    return StdoutAs(
        source=f"{slot.id}/{output}",
        edges=tuple(Edge(**edge) for edge in lines_to),
        # any node can be restarted by hand (`flow node restart`); the daemon closes these
        # inputs itself once the node has ended for good (Run.node_finished)
        restartable=True,
        held=not run.released,  # its receivers may not all be connected yet
        records=slot.spec.sends_logs,
        min_level=slot.spec.logs_level,
        tcp=routing.stdout_keys(slot.spec, lines_to, placement),  # to other machines
    )


def stdout_wire(run: _Run, slot: NodeSlot, edge: WireEdge) -> WireStdout:
    """A live edge (an observer, a recorder, a dynamic node) to the `send_stdout_as` output
    of `slot`, a process node, for the keeper that sends its lines."""
    placement = run.placed.placement if run.placed is not None else None
    raw = edge_json(edge)
    return WireStdout(slot.id, Edge(**raw), routing.stdout_keys(slot.spec, [raw], placement))
