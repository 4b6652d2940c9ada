"""`python -m daemon.recorder CONFIG`: one recording of a run's outputs into an MCAP file.

Started by the daemon (or `flow run`) for `--record` and `flow record`. It binds one PULL
per recorded output and says `{"ready": ...}` on stdout; the daemon then wires each output
to it as a live drop_oldest edge, like a `flow topic echo` observer, so a slow or failing
recorder never slows a sender. It stops when its stdin closes (the daemon closes it when
the recording ends, and so does the daemon's death) or on SIGTERM: it reads what is still
in flight, finishes the file, and prints one JSON summary line (per topic recorded and
missed, the first error) before it exits. Before closing stdin the daemon may write one
line, `{"ends": [topics]}`: outputs whose nodes have ended, whose end-of-stream is on its
way; what is in flight is then read until each of them has come (a node on another machine
may print and exit before its keeper's tcp:// edge has even finished its handshake), not
only until the sockets are quiet.

Missed messages are counted three ways: gaps in an edge's sequence numbers (the sender
dropped them: the recorder fell behind), the recorder's own drop-oldest queue, and writes
that failed (everything after a failed write).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

import zmq

from daemon.model import recording as fmt
from daemon.recorder.writer import McapSink, Received, Tallies, Tally, WriterThread
from node_sdk.leases import Releases, ShmReader
from node_sdk.wire import (
    FLAG_PACKED,
    HEADER,
    HEADER_SIZE,
    KIND_ARROW,
    KIND_ARROW_BUFFERS,
    KIND_EOS,
    KIND_SHM,
    MAX_FRAME_BYTES,
    unpack_header,
)

RCVHWM: Final = 100  # like an observer's queue: the sender drops (counted) past it
BATCH: Final = 64  # messages read off one socket before looking at the others
QUIET_S: Final = 0.2  # stopping: in-flight messages are read until the sockets are this quiet
DRAIN_MAX_S: Final = 3.0  # and for no longer than this
MAX_CUE: Final = 1 << 16  # bytes of the stop line kept
FINISH_MAX_S: Final = 10.0  # writing out the queue and the file's summary, at most

_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


class Recorder:
    """The reading side: sockets -> `Received` -> the writer's queue; sequence gaps."""

    def __init__(
        self, context: zmq.Context[Any], topics: Mapping[str, str], curve: Any = None
    ) -> None:
        self.sockets: dict[zmq.Socket[Any], str] = {}
        self.endpoints: dict[str, str] = {}  # topic -> the endpoint bound (its port, for tcp)
        for topic, endpoint in topics.items():
            sock = context.socket(zmq.PULL)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, RCVHWM)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
            if endpoint.startswith("tcp://"):  # a node on another machine: CURVE, as its edges
                curve.server(context, sock)
            sock.bind(endpoint)
            self.sockets[sock] = topic
            self.endpoints[topic] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.tallies = Tallies({topic: Tally() for topic in topics})
        self.last_seq: dict[tuple[str, int], int] = {}  # (topic, generation) -> seq
        self.ended: set[str] = set()  # topics whose last message was an end-of-stream
        self.shm = ShmReader(Releases())
        self.undecodable = 0

    def read_ready(self, ready: list[zmq.Socket[Any]], writer: WriterThread) -> int:
        """Read what the ready sockets hold (a batch each); how many messages."""
        count = 0
        for sock in ready:
            topic = self.sockets[sock]
            for _ in range(BATCH):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                count += 1
                message = self._received(topic, frames)
                if message is not None:
                    writer.put(message)
        self.shm.releases.flush()  # the segments just copied go back to their senders
        self.shm.sweep()  # and the ones their senders removed are unmapped
        return count

    def _received(self, topic: str, frames: list[bytes]) -> Received | None:
        try:
            header = unpack_header(frames[0])
        except Exception:
            self.undecodable += 1
            return None
        key = (topic, header.generation)
        last = self.last_seq.get(key, 0)
        # a gap: the sender dropped messages on this edge (the recorder fell behind); an
        # end-of-stream carries the last seq sent, so a drop at the very end counts too
        self.tallies.missed(topic, header.seq - last - (header.kind != KIND_EOS))
        self.last_seq[key] = max(last, header.seq)
        if header.kind == KIND_EOS:
            self.ended.add(topic)
            return None
        self.ended.discard(topic)  # a restarted node's next generation
        if header.flags & FLAG_PACKED:
            size = HEADER.unpack_from(frames[0])[-1]
            body: bytes = frames[0][HEADER_SIZE + size :]
        elif len(frames) == 2:
            body = frames[1]
        else:
            self.undecodable += 1
            self.tallies.missed(topic, 1)
            return None
        kind = header.kind
        try:
            if kind == KIND_SHM:  # copied out at once: the segment goes back to its sender
                kind, body = self.shm.open_payload(body, header.extra, _copy)
            if kind == KIND_ARROW_BUFFERS:  # recorded as every arrow payload: a stream
                kind, body = KIND_ARROW, fmt.arrow_stream(body)
        except Exception as exc:
            if not self.undecodable:  # the first cause, in the recorder's log
                print(f"recorder: {topic}: a message cannot be read: {exc!r}", file=sys.stderr)
            self.undecodable += 1
            self.tallies.missed(topic, 1)
            return None
        metadata = dict(header.extra.get("m") or {})
        return Received(topic, kind, body, header.extra, header.seq, header.generation,
                        header.timestamp_ns, metadata)  # fmt: skip

    def poll(self, timeout_s: float) -> list[zmq.Socket[Any]]:
        poller = zmq.Poller()
        for sock in self.sockets:
            poller.register(sock, zmq.POLLIN)
        return [sock for sock, _ in poller.poll(int(timeout_s * 1000))]

    def close(self) -> None:
        self.shm.releases.close()
        for sock in self.sockets:
            sock.close(linger=0)


def _copy(kind: int, view: Any, extra: Mapping[str, Any]) -> tuple[int, bytes]:
    return kind, bytes(view)


class StopCue:
    """Our stdin: closed by the daemon (or its death) to end the recording, after at most
    one line naming the topics whose end-of-stream is to be waited for."""

    def __init__(self) -> None:
        self.said = b""
        self.closed = False

    def read(self) -> bool:
        """True once stdin is closed: the recording ends."""
        while not self.closed and select.select([0], [], [], 0)[0]:
            try:
                chunk = os.read(0, 4096)
            except OSError:
                chunk = b""
            self.closed = not chunk
            self.said = (self.said + chunk)[-MAX_CUE:]  # bounded: one short line is expected
        return self.closed

    def ends(self, topics: Mapping[str, str]) -> set[str]:
        """The recorded topics the daemon said have ended; none if it said nothing usable."""
        try:
            said = json.loads(self.said.splitlines()[-1]) if self.said.strip() else {}
        except ValueError:
            return set()
        named = said.get("ends") if isinstance(said, dict) else None
        return {t for t in named if isinstance(t, str) and t in topics} if named else set()


def record(config: Mapping[str, Any]) -> dict[str, Any]:
    """Record until stopped; the summary."""
    topics: dict[str, str] = dict(config["topics"])
    context: zmq.Context[Any] = zmq.Context()
    curve = None
    if config.get("tcp"):  # outputs of nodes on other machines: a tcp:// CURVE server each
        from node_sdk.config import TcpSecurity
        from node_sdk.tcp import Curve

        tcp = config["tcp"]
        curve = Curve(TcpSecurity(str(tcp["public_key"]), str(tcp["secret_file"]),
                                  tuple(tcp["admitted"]), float(tcp["heartbeat_ivl_s"]),
                                  float(tcp["heartbeat_timeout_s"])))  # fmt: skip
    recorder = Recorder(context, topics, curve)
    error: str | None = None
    sink: McapSink | None = None
    try:
        sink = McapSink(str(config["path"]), list(topics), config.get("run") or {},
                        str(config.get("dataflow", "")))  # fmt: skip
    except OSError as exc:  # a full disk, a folder not writable: nothing is recorded
        error = f"cannot write {config['path']}: {exc.strerror or exc}"
    writer = WriterThread(sink, recorder.tallies, error)
    writer.start()
    print(json.dumps({"ready": True, "error": error, "endpoints": recorder.endpoints}),
          flush=True)  # fmt: skip
    cue = StopCue()
    try:
        while not _stopping and not cue.read():
            recorder.read_ready(recorder.poll(0.2), writer)
        ends = cue.ends(topics)
        deadline = time.monotonic() + DRAIN_MAX_S
        while time.monotonic() < deadline and (
            recorder.read_ready(recorder.poll(QUIET_S), writer) or not ends <= recorder.ended
        ):
            pass
    finally:
        recorder.close()
        if curve is not None:
            curve.close()
    writer.close()
    writer.join(FINISH_MAX_S)
    tally = recorder.tallies.as_dict()
    if writer.is_alive():
        writer.error = writer.error or f"the file was not finished within {FINISH_MAX_S:g}s"
    return {
        "recorded": sum(t["recorded"] for t in tally.values()),
        "missed": sum(t["missed"] for t in tally.values()),
        "topics": tally,
        "error": writer.error,
        "undecodable": recorder.undecodable,
    }


def main() -> int:
    """`python -m daemon.recorder '{"path": ..., "topics": {"node/out": endpoint}, ...}'`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run; it stops us
    signal.signal(signal.SIGTERM, _stop)
    # auxiliary work: the nodes get the CPU first (a recorder that falls behind drops,
    # counted); and the reader thread gets the GIL back often from the writer's encoding,
    # so the senders' shared-memory segments it copies are released sooner
    os.nice(10)
    sys.setswitchinterval(0.0005)
    summary = record(json.loads(sys.argv[1]))
    with contextlib.suppress(BrokenPipeError):  # the daemon died: nobody left to tell
        print(json.dumps(summary), flush=True)
    os._exit(0)  # a writer still stuck on a slow disk is not waited for


if __name__ == "__main__":
    sys.exit(main())
