"""`flow start --probe`: a dataflow's links between machines probed before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.model.replies_cluster import LinkProbeReply

# The daemon bounds every probe (each message, each machine's answer); the whole matrix
# takes as long as its links, which only the daemon knows: the client waits for it as
# long as the daemon lives (a dead daemon is noticed within a quarter second).
CALL_TIMEOUT_S = 24 * 3600.0


def probe_before_start(path: Path, text: str) -> bool:
    """`flow start --probe`: the links of the dataflow at `path`, probed with the defaults;
    False (each failing link said on stderr) when one fails. Nothing on stdout, which
    `--detach` keeps for the run id."""
    from cli import client, render
    from daemon.model.cluster_probe import DEFAULT_TIMEOUT_S, LARGE_BYTES
    from daemon.model.requests_base import Seconds, YamlText
    from daemon.model.requests_cluster import ClusterProbe

    request = ClusterProbe(path=str(path), text=YamlText(text), large=LARGE_BYTES,
                           timeout=Seconds(DEFAULT_TIMEOUT_S))  # fmt: skip
    reply = client.call(request, timeout=CALL_TIMEOUT_S)
    failed = say_failed(reply)
    probed = sum(not link.local for link in reply.links)
    if failed:
        render.err.print(f"not started: {failed} of {probed} links between machines "
                         f"failed (flow doctor --cluster {path} shows them all)",
                         markup=False, highlight=False)  # fmt: skip
        return False
    render.err.print(f"{probed} links between machines probed: ok", style="dim", markup=False)
    return True


def say_failed(reply: LinkProbeReply) -> int:
    """One line on stderr per failing link (what a script or a log keeps); how many."""
    from cli import render

    failed = [link for link in reply.links if link.error]
    for link in failed:
        render.error(f"link {link.source} -> {link.target}: {link.error}")
    return len(failed)
