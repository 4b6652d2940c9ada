"""A `send_stdout_as` output's statistics: counted by the keeper on real sockets, reported
in `stdout_stats` before the node's exit, and merged into the node's slot as an SDK node's
`stats` are."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from daemon.cluster.host import Host
from daemon.keeper.process import Keeper
from daemon.keeper.stdout_output import EndedOutputs
from daemon.model.cluster_messages import Carry
from daemon.model.descriptor import NodeSpec, RestartPolicy
from daemon.model.keeper_messages import (
    Attach,
    Edge,
    Exited,
    OutputCounts,
    Quit,
    Spawn,
    State,
    StdoutAs,
    StdoutStats,
    decode,
    encode,
)
from daemon.run.placement import RemoteKeeper
from daemon.run.slot import NodeSlot
from daemon.run.stdout_stats import merge_stdout_stats, with_stdout_counts
from node_sdk.channel import Stats
from node_sdk.frames import encode_data, payload_bytes
from node_sdk.wire import encode_payload

BOUND_MS = 10_000


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)  # a failed test may leave sockets open


def bound(context: zmq.Context[zmq.Socket[bytes]], kind: int, endpoint: str) -> zmq.Socket[bytes]:
    socket = context.socket(kind)
    socket.bind(endpoint)
    return socket


def arrived(socket: zmq.Socket[bytes], count: int) -> None:
    for got in range(count):
        assert socket.poll(BOUND_MS), f"only {got} of {count} messages came"
        socket.recv_multipart()


def test_lines_are_counted_once_with_their_bytes_and_drops_per_edge(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    pulls = [bound(context, zmq.PULL, f"inproc://pull{i}") for i in range(2)]
    # a backpressure input that pays no credit back: past its window, lines are dropped
    router = bound(context, zmq.ROUTER, "inproc://slow")
    edges = (*(Edge(f"inproc://pull{i}", f"sink{i}", "in", "drop_oldest", 10) for i in range(2)),
             Edge("inproc://slow", "slow", "in", "backpressure", 2))  # fmt: skip
    ended = EndedOutputs()
    output = ended.output_for(context, "talker", 1, StdoutAs("talker/lines", edges))
    assert output is not None
    for line in ("a", "bb", "ccc", "dddd"):
        output.send_line(line)
    for pull in pulls:
        arrived(pull, 4)
    counts = output.counts
    # one line to three receivers is one sent (as an SDK node counts), and its bytes once;
    # the two that found no credit on the slow edge are its drops (they went to the pulls)
    sent_bytes = 1 + 2 + 3 + 4
    assert (counts.sent, counts.dropped, counts.bytes) == (4, 2, sent_bytes)
    (report,) = ended.stats([output])
    assert report == StdoutStats((OutputCounts("talker", 1, "lines", 4, 2, sent_bytes),))
    # unchanged: reported once more (the daemon's rate falls to 0), then no more
    assert ended.stats([output]) == [report]
    assert ended.stats([output]) == []
    output.send_line("e")
    (after,) = ended.stats([output])
    assert (after.outputs[0].sent, after.outputs[0].bytes) == (5, sent_bytes + 1)  # once

    # the node exits and comes back: its next generation counts from 0, as an SDK node's
    # new process does, on the same sockets; the ended one's last counts are reported first
    ended.keep("talker", output)
    following = ended.output_for(context, "talker", 2, StdoutAs("talker/lines", edges))
    assert following is not None
    assert following.edges  # the same sockets
    fresh = StdoutStats((OutputCounts("talker", 2, "lines", 0, 0, 0),))
    assert ended.stats([following]) == [fresh]
    following.send_line("again")
    (second,) = ended.stats([following])
    assert second.outputs == (OutputCounts("talker", 2, "lines", 1, 1, 5),)  # sent once
    following.close()
    for socket in (*pulls, router):
        socket.close(linger=0)


def test_the_keeper_reports_a_nodes_counts_before_its_exit(
    context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    pull = bound(context, zmq.PULL, "inproc://lines")
    keeper = Keeper.bind(context, "inproc://keeper", grace=30.0)
    thread = threading.Thread(target=keeper.serve, daemon=True)
    thread.start()
    daemon = context.socket(zmq.DEALER)
    daemon.setsockopt(zmq.RCVTIMEO, BOUND_MS)
    daemon.connect("inproc://keeper")
    try:
        edge = Edge("inproc://lines", "sink", "in", "drop_oldest", 10)
        argv = (sys.executable, "-c", "print('one'); print('three')")
        daemon.send(encode(Spawn("talker", 1, argv, env={}, cwd=str(tmp_path),
                                 log=str(tmp_path / "talker.log"),
                                 stdout_as=StdoutAs("talker/lines", (edge,)))))  # fmt: skip
        heard: list[Any] = []
        while not any(isinstance(m, Exited) for m in heard):
            heard.append(decode(daemon.recv()))
        arrived(pull, 2)
        stats = [m for m in heard if isinstance(m, StdoutStats)]
        assert stats, heard
        # the last before the exit has both lines: none is left for a report after it
        assert stats[-1].outputs == (OutputCounts("talker", 1, "lines", 2, 0, 8),)
        assert heard.index(stats[-1]) < len(heard) - 1
        # a daemon that attaches (one back after a crash) is told them again, changed or not
        daemon.send(encode(Attach()))
        assert isinstance(decode(daemon.recv()), State)
        assert decode(daemon.recv()) == stats[-1]
    finally:
        daemon.send(encode(Quit()))
        thread.join(BOUND_MS / 1000)
        daemon.close(linger=0)
        pull.close(linger=0)
    assert not thread.is_alive()


@pytest.mark.parametrize("line", ["", "line 1", "é" * 10, "x" * (1 << 17)], ids=len)
def test_a_lines_bytes_are_its_payloads_packed_or_not(line: str) -> None:
    frames = encode_data(line, source="talker/lines", generation=1, seq=1, timestamp_ns=1)
    assert payload_bytes(frames) == encode_payload(line).nbytes == len(line.encode())


# ------------------------------------------------------------------ the daemon's side


class _Run:
    """The part of a run a slot needs here."""

    id = "run-1"

    def record_node(self, node_id: str, fields: dict[str, Any]) -> None:
        pass


def slot(node: str, connects: bool) -> NodeSlot:
    spec = NodeSpec(id=node, name=None, description=None, path="sh", executable=None,
                    args=(), env={}, inputs=(), outputs=("lines",), build=(),
                    restart=RestartPolicy(), send_stdout_as="lines", machine=None, raw={},
                    line=1, connects=connects)  # fmt: skip
    made = NodeSlot(spec=spec, run=_Run())  # type: ignore[arg-type]  # the fake's part
    made.generation = 2
    return made


def test_a_process_nodes_counts_become_its_stats_with_a_rate() -> None:
    talker = slot("talker", connects=False)
    slots = {"talker": talker}
    merge_stdout_stats(slots, StdoutStats((OutputCounts("talker", 2, "lines", 10, 0, 40),)))
    assert talker.stats is not None
    assert talker.stats["outputs"] == {"lines": {"sent": 10, "dropped": 0, "bytes": 40}}
    assert talker.stats["rates"] == {}  # one report gives no rate yet, as for an SDK node
    first_at = talker.stats["at"]
    merge_stdout_stats(slots, StdoutStats((OutputCounts("talker", 2, "lines", 30, 1, 120),)))
    assert talker.stats["outputs"]["lines"]["sent"] == 30
    assert talker.stats["rates"]["out:lines"] > 0
    assert talker.stats["at"] > first_at
    # an older generation's, another node's, another output's: stale or not its own
    before = talker.stats
    stale = (OutputCounts("talker", 1, "lines", 99, 0, 1),
             OutputCounts("gone", 2, "lines", 99, 0, 1),
             OutputCounts("talker", 2, "other", 99, 0, 1))  # fmt: skip
    merge_stdout_stats(slots, StdoutStats(stale))
    assert talker.stats is before


def test_a_node_with_its_own_report_gets_the_keepers_counts_in_it() -> None:
    node = slot("py", connects=True)
    merge_stdout_stats({"py": node}, StdoutStats((OutputCounts("py", 2, "lines", 7, 0, 21),)))
    assert node.stats is None  # waits for the node's own report, not merged alone
    own = Stats({"tick": {"received": 3}}, {"out": {"sent": 5, "dropped": 0, "bytes": 9}}, 12)
    assert with_stdout_counts(node, own) == Stats(
        {"tick": {"received": 3}},
        {"out": {"sent": 5, "dropped": 0, "bytes": 9},
         "lines": {"sent": 7, "dropped": 0, "bytes": 21}},
        12,
    )  # fmt: skip
    node.generation = 3  # restarted: the last generation's counts are not this one's
    assert with_stdout_counts(node, own) == own


def test_a_member_relays_the_counts_of_its_nodes_to_the_coordinator() -> None:
    """A node placed on a member: its keeper's report goes over the cluster link as every
    keeper message but `pong` does, and reaches the run's keeper events on the coordinator."""
    relayed: list[Carry] = []
    host = Host(rt=None, keys=None,  # type: ignore[arg-type]  # neither is read here
                link_send=lambda c: relayed.append(c) is None, connected=lambda: True)  # fmt: skip
    report = StdoutStats((OutputCounts("talker", 1, "lines", 5, 0, 30),))
    host._from_keeper("run-1", report)
    (carry,) = relayed
    assert (carry.run, carry.kind) == ("run-1", "keeper")
    heard: list[Any] = []
    remote = RemoteKeeper("member-1", "run-1", relay=None, on_event=heard.append)  # type: ignore[arg-type]
    remote.deliver(carry.body)
    assert heard == [report]
