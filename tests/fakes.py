"""The fakes every test folder shares: the daemon's two ROUTERs and its socket owner.

- `FakeNodeRouter`: the daemon's end of the node channel, a real ROUTER that records what
  nodes say and answers as the test chooses; pumped by the test, or served by a thread for a
  caller that blocks on its answer (an attach).
- `FakeControlDaemon`: the control endpoint, a real ROUTER in a thread giving canned replies.
- `FakeOwner`: a real `SocketOwner` that is never served, so what it accepts stays queued
  for the test to read.

The conftest of each folder hands them out as fixtures; test modules import the classes
from here, never from another test module or a conftest.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import zmq

from daemon.keeper.shm_cleanup import remove_run_segments
from daemon.run.zmq_trio import SocketOwner
from node_sdk import paths

BOUND_S = 20.0  # a safety bound on every wait, never an assertion about speed
POLL_MS = 20  # how often a serving thread looks at its stop flag

Message = dict[str, Any]
Answer = Callable[[bytes, Message], Iterable[Message]]  # the replies to one request


def no_answer(_identity: bytes, _message: Message) -> list[Message]:
    return []


class FakeNodeRouter:
    """The daemon's node channel ROUTER at `endpoint`: records, and replies with `answer`.

    One thread uses the socket: the test's (`pump`, `wait_for`, `send`) or, after
    `serve_in_thread()`, the serving thread's; then only `answer` may send.
    """

    def __init__(self, endpoint: str, answer: Answer = no_answer) -> None:
        self.endpoint = endpoint
        self.answer = answer
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind(endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)
        self._watched: dict[zmq.Socket[bytes], Callable[[list[bytes]], None]] = {}
        self.requests: list[tuple[bytes, Message]] = []  # every message, in arrival order
        self.peers: dict[str, bytes] = {}  # node -> identity, from its hello
        self.byes: set[str] = set()
        self.stats: dict[str, list[Message]] = {}  # node -> its `stats` reports
        # runs of the nodes it served: their shared-memory segments go at close, as the
        # daemon removes a run's at its end (a sender leaves the ones a receiver still held)
        self.runs: set[str] = set()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None

    @classmethod
    def for_home(cls, home: Path, answer: Answer = no_answer) -> FakeNodeRouter:
        """Bound where the SDK looks for the daemon of FLOW_HOME `home` (attach, dynamic)."""
        paths.socket_dir(home).mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(paths.nodes_endpoint(home), answer)

    # ------------------------------------------------------------ the test's thread

    def watch(self, sock: zmq.Socket[bytes], on_frames: Callable[[list[bytes]], None]) -> None:
        """Pump `sock` along with the router: `on_frames` gets each message it receives."""
        self.poller.register(sock, zmq.POLLIN)
        self._watched[sock] = on_frames

    def pump(self, until: Callable[[], bool], what: str, bound_s: float = BOUND_S) -> None:
        """Receive and handle messages until `until()`; fail naming `what` after `bound_s`."""
        deadline = time.monotonic() + bound_s
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"gave up waiting for {what}"
            self._poll(int(left * 1000) + 1)

    def wait_for(self, what: str, nodes: set[str]) -> None:
        """Until every node of `nodes` said `what` ("hello" or "bye")."""
        said = self.peers.keys() if what == "hello" else self.byes
        self.pump(lambda: nodes <= set(said), f"{what} from {sorted(nodes - set(said))}")

    def send(self, node: str, message: Message) -> None:
        """To a node that said hello."""
        self.reply(self.peers[node], message)

    def reply(self, identity: bytes, message: Message) -> None:
        self.router.send_multipart([identity, json.dumps(message).encode()])

    def start_all(self) -> None:
        for node in self.peers:
            self.send(node, {"t": "start"})

    # ------------------------------------------------------------ served by a thread

    def serve_in_thread(self) -> None:
        """Answer from a thread, for a test whose own thread blocks on the answer."""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving, close, remove the segments of its runs; raise what went wrong in
        the serving thread, if anything."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(BOUND_S)
        self.ctx.destroy(linger=0)
        for run in self.runs:
            remove_run_segments(run)
        Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)  # zmq leaves it
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------ inside

    def _serve(self) -> None:
        try:
            while not self._done.is_set():
                self._poll(POLL_MS)
        except BaseException as exc:  # the test sees it at close()
            self._error = exc

    def _poll(self, timeout_ms: int) -> None:
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.router:
                self._on_router(*self.router.recv_multipart())
            else:
                self._watched[sock](sock.recv_multipart())

    def _on_router(self, identity: bytes, frame: bytes) -> None:
        message: Message = json.loads(frame)
        self.requests.append((identity, message))
        kind = message.get("t")
        if kind == "hello":
            expected = f"{message['run']}/{message['node']}/{message['generation']}"
            assert identity == expected.encode(), (identity, message)
            assert message["pid"] > 0, message
            self.peers[message["node"]] = identity
            self.runs.add(message["run"])
        elif kind == "bye":
            self.byes.add(identity.decode().split("/")[1])
        elif kind == "stats":
            self.stats.setdefault(identity.decode().split("/")[1], []).append(message)
        for reply in self.answer(identity, message):
            self.reply(identity, reply)


def node_configs(
    router: FakeNodeRouter,
    sockdir: Path,
    *,
    policy: str = "drop_oldest",
    queue_size: int = 10,
    receiver_bound: bool = True,
    output: str = "out",
    input_id: str = "in",
) -> tuple[Message, Message]:
    """Configs of `sender/<output>` -> `receiver/<input_id>`, as the daemon would write them."""
    run = str(uuid.uuid4())
    router.runs.add(run)
    endpoint = f"ipc://{sockdir}/{run[:8]}-n1i0" if receiver_bound else f"ipc://{sockdir}/none"
    base = {"run": run, "run_name": "t", "generation": 1, "restarts": 0,
            "daemon": router.endpoint, "descriptor": None, "config": {}}  # fmt: skip
    edge = {"endpoint": endpoint, "node": "receiver", "input": input_id, "policy": policy,
            "queue_size": queue_size}  # fmt: skip
    sender = {**base, "node": "sender", "inputs": {}, "outputs": {output: [edge]}}
    receiver = {**base, "node": "receiver", "outputs": {}, "inputs": {input_id: {
        "endpoint": endpoint, "queue_size": queue_size, "policy": policy,
        "sources": [f"sender/{output}"]}}}  # fmt: skip
    return sender, receiver


# ---------------------------------------------------------------- the control endpoint

Reply = Message | None  # the whole reply (its id filled in), or None for silence
Handler = Callable[[Message], Reply]


def ok(body: Message) -> Message:
    return {"v": 1, "ok": True, "body": body}


def fail(kind: str, message: str) -> Message:
    return {"v": 1, "ok": False, "error": {"kind": kind, "message": message}}


class FakeControlDaemon:
    """The control ROUTER of FLOW_HOME `home`, in a thread, answering each request type
    with the reply `on` gave it (an unknown type gets the daemon's BadRequest)."""

    def __init__(self, home: Path) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: list[Message] = []
        self.stray_first = False  # send a reply with a wrong id before the real one
        paths.socket_dir(home).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.endpoint = paths.control_endpoint(home)
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.linger = 0
        self._sock.bind(self.endpoint)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def on(self, type_: str, reply: Reply | Handler) -> None:
        """Answer requests of `type_` with `reply`, or with what `reply(body)` returns."""
        if callable(reply):
            self.handlers[type_] = reply
            return
        canned = reply
        self.handlers[type_] = lambda _body: canned

    def close(self) -> None:
        """Stop, close; raise what went wrong in the serving thread, if anything."""
        self._stop.set()
        self._thread.join(BOUND_S)
        self._ctx.destroy(linger=0)
        # libzmq unlinks the ipc file asynchronously; the orphan check looks right away
        Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                if self._sock.poll(POLL_MS):
                    self._answer(*self._sock.recv_multipart())
        except BaseException as exc:  # the test sees it at close()
            self._error = exc

    def _answer(self, ident: bytes, _empty: bytes, frame: bytes) -> None:
        req = json.loads(frame)
        self.requests.append(req)
        handler = self.handlers.get(req["type"])
        reply: Reply = fail("BadRequest", f"unknown request type {req['type']!r}")
        if handler is not None:
            reply = handler(req["body"])
        if reply is None:
            return
        if self.stray_first:
            stray = dict(reply, id="0" * 16)
            self._sock.send_multipart([ident, b"", json.dumps(stray).encode()])
        answer = dict(reply, id=req["id"])
        self._sock.send_multipart([ident, b"", json.dumps(answer).encode()])


# ---------------------------------------------------------------- the socket owner


@attrs.define(eq=False)
class FakeOwner(SocketOwner):
    """A real `SocketOwner` over a socket that is never served: `send` queues and answers
    as the real one does (False once its outbox is full); `outgoing` is what it queued."""

    @property
    def outgoing(self) -> list[list[bytes]]:
        return list(self._outbox)

    def replies(self) -> list[Message]:
        """The JSON body (last frame) of each queued message."""
        return [json.loads(frames[-1]) for frames in self._outbox]
