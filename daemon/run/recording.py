"""Recordings of a run (docs/recording.md): one recorder process each, wired like observers.

A recording is auxiliary work (SPEC 7.3): the recorder (`python -m daemon.recorder`) gets
live drop_oldest edges from the outputs it records, so it never slows a sender, and
whatever happens to it (it cannot start, the disk fills, it dies) only ever marks the run
`degraded: recording: ...`, with the count of what was not recorded. Its stdin is its
lifeline: closed when the recording ends, and by the kernel when this process dies, so a
recorder never outlives what started it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from daemon.model.descriptor import NodeSpec
from daemon.model.errors import BadRequest
from daemon.model.states import NodeStatus
from node_sdk.config import Edge

if TYPE_CHECKING:
    from daemon.run.supervisor import Run

log = logging.getLogger(__name__)

READY_S: Final = 20.0  # a recorder that has not bound its sockets by then is given up
STOP_S: Final = 20.0  # to drain, write out its queue and finish the file (it bounds it too)
RECORDER_QUEUE: Final = 100  # the live edges' queue size, as an observer's
LEASE_S: Final = 5.0  # `flow record`: a recording nobody renews this long is stopped
MAX_LINE: Final = 1 << 20
MAX_RECOVERED: Final = 1000  # `.recovered-N` names tried for a recovered run's recording
_RECOVERED_TAIL: Final = re.compile(r"\.recovered-\d+$")


@attrs.define(eq=False)
class Recording:
    """One recorder process and what it records."""

    id: str
    path: str
    topics: dict[str, str]  # node/output -> the recorder's endpoint for it
    process: trio.Process | None = None
    summary: dict[str, Any] | None = None  # once stopped
    expires: float | None = None  # a `flow record` lease (monotonic), else None
    stopped: trio.Event = attrs.field(factory=trio.Event)
    # One stop at a time: `flow record`'s stop, its lease running out and the run's end
    # may all stop it at once, and two readers of the recorder's stdout is a trio error.
    stopping: trio.Lock = attrs.field(factory=trio.Lock)
    # nodes that had ended when it began: no end-of-stream of theirs will reach it
    ended_before: frozenset[str] = frozenset()
    _lines: bytes = b""

    async def read_line(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        while b"\n" not in self._lines:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk or len(self._lines) > MAX_LINE:
                raise OSError("the recorder closed its output")
            self._lines += chunk
        line, _, self._lines = self._lines.partition(b"\n")
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError("the recorder said something that is not a JSON object")
        return value


def recordable_topics(run: Run, wanted: list[str] | None) -> list[str]:
    """`node/output` of every output flow can observe (what nodes that run the SDK send, on
    any machine, and the `send_stdout_as` output of a process node, whose keeper sends its
    lines), or the `wanted` ones, checked; BadRequest names a topic that is not one."""
    every = [f"{slot.id}/{output}" for slot in run.slots.values()
             for output in slot.spec.outputs if _sent(slot.spec, output)]  # fmt: skip
    if not wanted:
        return every
    for topic in wanted:
        node, _, output = topic.partition("/")
        slot = run.slots.get(node)
        if slot is None or output not in slot.spec.outputs:
            raise BadRequest(f"no output {topic!r} in run {run.name or run.id} "
                             f"(outputs: {', '.join(every) or 'none'})")  # fmt: skip
    return list(dict.fromkeys(wanted))


def _sent(spec: NodeSpec, output: str) -> bool:
    """True when a recorder can be wired to `output`: the SDK sends it, or the keeper (a
    process node's `send_stdout_as`)."""
    return spec.connects or output == spec.send_stdout_as


def _endpoint(run: Run, token: str, n: int, topic: str) -> str:
    """Where the recorder binds for `topic`: ipc:// for a node of this machine; for a node
    placed on another one, tcp:// on this machine's cluster address (a free port, CURVE),
    which that node reaches with the keys it carries in a placed run (model/routing.py)."""
    placed = run.placed
    if placed is not None and placed.is_remote(topic.partition("/")[0]):
        return f"tcp://{placed.placement.machines[placed.here].host}:*"
    return f"ipc://{run.sockets / f'rec{token}-{n}'}"


def _tcp_keys(run: Run) -> dict[str, Any] | None:
    """The recorder's CURVE server keys (this machine's), for outputs on other machines."""
    placed = run.placed
    if placed is None:
        return None
    place = placed.placement
    return {
        "public_key": place.machines[placed.here].public_key,
        "secret_file": place.secret_file,
        "admitted": sorted({m.public_key for m in place.machines.values()}),
        "heartbeat_ivl_s": place.heartbeat_s,
        "heartbeat_timeout_s": place.timeout_s,
    }


def recovered_path(path: str) -> str:
    """Where a run the daemon recovered is recorded again. Its file is finished (a recorder
    never outlives the daemon that started it) and never written over, so the recording
    goes on in `NAME.recovered-N.EXT` next to it, N the first free from 1 (an earlier
    recovery's `.recovered-M` is not stacked on). With none free, `path` itself: the
    recorder refuses a file that exists, and the run says so in its `degraded:` line."""
    original = Path(path)
    stem = _RECOVERED_TAIL.sub("", original.stem)
    for n in range(1, MAX_RECOVERED + 1):
        candidate = original.with_name(f"{stem}.recovered-{n}{original.suffix}")
        if not candidate.exists():
            return str(candidate)
    return path


async def start_recording(
    run: Run, path: str, topics: list[str], *, refuse: bool = False
) -> Recording:
    """Start a recorder for `topics` into `path` and wire the outputs to it. A recorder that
    does not start leaves the run as it was, degraded: its Recording has a summary.
    `refuse` (`flow record`): one that cannot write its file is ended and BadRequest raised,
    the run left as it was; a run's own recording goes on, counting what it cannot write."""
    token = secrets.token_hex(4)
    endpoints = {t: _endpoint(run, token, n, t) for n, t in enumerate(topics)}
    ended = frozenset(node for node, slot in run.slots.items() if slot.status.finished)
    recording = Recording(token, path, endpoints, ended_before=ended)
    run.recordings.append(recording)
    async with recording.stopping:  # a run ending now stops it once it started
        config: dict[str, Any] = {
            "path": path, "topics": endpoints, "dataflow": _dataflow_text(run),
            "run": {"id": run.id, "name": run.name or "", "dataflow": str(run.dataflow.path)},
        }  # fmt: skip
        if any(endpoint.startswith("tcp://") for endpoint in endpoints.values()):
            config["tcp"] = _tcp_keys(run)
        try:
            errors = (run.run_dir / f"recorder-{token}.log").open("ab")
        except OSError:
            errors = None  # no log folder (a full disk): its errors are lost, not its summary
        try:
            recording.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "daemon.recorder", json.dumps(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors if errors is not None else subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C stops the run; the run stops it
            )  # fmt: skip
            with trio.fail_after(READY_S):
                ready = await recording.read_line()
        except (OSError, ValueError, trio.TooSlowError) as exc:
            await _end(recording, kill=True)
            _fail(run, recording, f"the recorder did not start: {exc or type(exc).__name__}")
            return recording
        finally:
            if errors is not None:
                errors.close()  # the child has its own copy
        if ready.get("error") and refuse:
            await _end(recording, kill=True)
            run.recordings.remove(recording)
            raise BadRequest(f"cannot record: {ready['error']}")
        if ready.get("error"):
            run.mark_degraded(f"recording: {ready['error']}")
        bound = ready.get("endpoints")
        if isinstance(bound, dict) and set(bound) == set(endpoints):  # a tcp:// port, chosen
            recording.topics = endpoints = {topic: str(bound[topic]) for topic in endpoints}
        keys = config.get("tcp") or {}
        for topic, endpoint in endpoints.items():
            node, _, output = topic.partition("/")
            # drop_oldest across machines too: the node's PUSH never waits for the recorder
            server_key = keys.get("public_key") if endpoint.startswith("tcp://") else None
            edge = Edge(endpoint, f"recorder-{token}", "record", "drop_oldest", RECORDER_QUEUE,
                        server_key)  # fmt: skip
            run.add_live_edge(node, output, edge)
        log.info("run %s: recording %s to %s (%d outputs)", run.id, token, path, len(topics))
    return recording


def _dataflow_text(run: Run) -> str:
    try:
        return run.descriptor_copy.read_text()
    except OSError:
        try:
            return run.dataflow.path.read_text()
        except OSError:
            return ""


async def stop_recording(run: Run, recording: Recording) -> dict[str, Any]:
    """Unwire, let the recorder finish its file, and keep its summary; what it missed
    (or why it failed) marks the run degraded. Idempotent, also when called again while
    it stops (a later call waits for the first); bounded by STOP_S."""
    async with recording.stopping:
        return await _stop(run, recording)


async def _stop(run: Run, recording: Recording) -> dict[str, Any]:
    if recording.summary is not None:
        return recording.summary
    for endpoint in recording.topics.values():
        run.remove_live_edge(endpoint)
    summary: dict[str, Any] | None = None
    cause = f"the recorder did not finish within {STOP_S:g}s"
    if recording.process is not None:
        with trio.move_on_after(STOP_S):
            try:
                if recording.process.stdin is not None:
                    ends = json.dumps({"ends": ended_topics(run, recording)})
                    await recording.process.stdin.send_all(ends.encode() + b"\n")
                    await recording.process.stdin.aclose()  # the recorder's cue to finish
                summary = await recording.read_line()
            except (OSError, ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
                cause = "the recorder ended before it finished the file"
        early = summary is None and cause.startswith("the recorder ended")
        await _end(recording, kill=summary is None and not early)  # a dead one says why
        if early and recording.process.returncode:
            ending = _exit_text(recording.process.returncode)
            cause = f"the recorder ended ({ending}) before it finished the file"
    if recording.summary is not None:  # failed to start: said already
        return recording.summary
    if summary is None:
        _fail(run, recording, cause)
        return recording.summary or {}
    recording.summary = summary
    recording.stopped.set()
    missed, error = int(summary.get("missed") or 0), summary.get("error")
    if missed or error:
        total = missed + int(summary.get("recorded") or 0)
        said = f"{missed} of {total} messages not recorded" + (f" ({error})" if error else "")
        run.mark_degraded(f"recording: {recording.path}: {said}")
    log.info("run %s: recording %s ended: %s", run.id, recording.id, summary)
    return summary


def ended_topics(run: Run, recording: Recording) -> list[str]:
    """The recorded outputs whose end-of-stream is on its way: a node's stdout lines once it
    has ended (its keeper ends them, however it exited), any output of a node that
    succeeded (the SDK ends its outputs as the node closes), if it ended while recorded.
    The recorder waits for those (bounded) before it finishes the file."""
    ended = []
    for topic in recording.topics:
        node, _, output = topic.partition("/")
        slot = run.slots.get(node)
        if slot is None or node in recording.ended_before:
            continue
        if not slot.status.finished or slot.status is NodeStatus.LOST:
            continue
        if output == slot.spec.send_stdout_as or slot.status is NodeStatus.SUCCEEDED:
            ended.append(topic)
    return ended


async def stop_all(run: Run) -> None:
    """Stop every recording of the run (in parallel): at its end, and however it ends."""
    async with trio.open_nursery() as nursery:
        for recording in run.recordings:
            nursery.start_soon(stop_recording, run, recording)


async def watch(run: Run, recording: Recording) -> None:
    """A recorder that ends on its own (killed, crashed) ends its recording at once: the
    run is marked degraded then, and `flow record` gets the summary, not at the run's end."""
    process = recording.process
    if process is None or recording.summary is not None:
        return
    await process.wait()
    # a stop that has begun ended it (the recorder exits once it has said its tally, maybe
    # before that stop has read it): only an exit no stop asked for is worth a warning
    if recording.summary is None and not recording.stopping.locked():
        log.warning("run %s: recorder %s ended on its own (%s)", run.id, recording.id,
                    _exit_text(process.returncode or 0))  # fmt: skip
        await stop_recording(run, recording)


async def expire(run: Run, recording: Recording) -> None:
    """`flow record`'s recording ends when its command stops renewing it (killed, gone)."""
    while recording.summary is None:
        if recording.expires is not None and time.monotonic() > recording.expires:
            log.info("run %s: recording %s not renewed: stopping it", run.id, recording.id)
            await stop_recording(run, recording)
            return
        await trio.sleep(1.0)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _fail(run: Run, recording: Recording, cause: str) -> None:
    recording.summary = {"recorded": 0, "missed": None, "error": cause, "topics": {}}
    recording.stopped.set()
    run.mark_degraded(f"recording: {recording.path}: {cause}")


async def _end(recording: Recording, *, kill: bool) -> None:
    process = recording.process
    if process is None:
        return
    if kill and process.returncode is None:
        process.kill()
    with trio.move_on_after(5.0):
        await process.wait()
    if process.returncode is None:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            await stream.aclose()
