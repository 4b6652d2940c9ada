"""Long waits said out loud: a live status line on a terminal, plain lines when piped.

`flow stop`, `flow down` and `flow restart` wait for nodes to end; `StatusLine` names what
is awaited (`stopping demo: waiting for transform (SIGTERM in 7s)`), and `stop_progress`
words it from the run's latest info and the time since the stop was asked for.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from daemon.model.settings import Settings

T = TypeVar("T")

ACTIVE = frozenset({"starting", "running"})  # a run in one of these has not ended
# a node in one of these has not ended yet: a stop waits for it
WAITING_STATUSES = frozenset({"pending", "running", "restarting"})


class StatusLine:
    """One line that says what a command waits for: rich's live status on a terminal
    (stderr), each new text once as a plain line when stderr is piped."""

    def __init__(self, *, live: bool | None = None) -> None:
        """`live` False: plain lines even on a terminal (`flow run`, whose node lines
        would tear a live line)."""
        from cli import render

        self._console = render.err
        self._want_live = self._console.is_terminal if live is None else live
        self._live: Any = None
        self._last = ""

    def __enter__(self) -> StatusLine:
        if self._want_live:
            self._live = self._console.status("", spinner="dots")
            self._live.start()
        return self

    def update(self, text: str, key: str | None = None) -> None:
        """Show `text`; piped, only when `key` (default: the text) changed, so a countdown
        prints one line per step rather than one a second."""
        if self._live is not None:
            self._live.update(text)
            return
        key = text if key is None else key
        if key != self._last:
            self._last = key
            self._console.print(text, style="dim", markup=False, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


def stop_progress(info: dict[str, Any], grace: float, elapsed: float) -> tuple[str, str]:
    """`stopping demo: waiting for transform (SIGTERM in 7s)`: the nodes a stop still
    waits for and the daemon's next step (STOP, then SIGTERM after the grace, then SIGKILL
    half the grace later), and a key that changes only when the nodes or the step do."""
    from cli import render

    nodes = info.get("nodes") or []
    waiting = [str(n["id"]) for n in nodes if n.get("status") in WAITING_STATUSES]
    lost = [str(n["id"]) for n in nodes if n.get("status") == "lost"]
    if lost and not waiting and info.get("status") in ("starting", "running"):
        # they cannot be told to stop: they end `lost` when the grace is over
        text = (f"stopping {render.run_label(info)}: waiting for {_names(lost)} on a lost "
                "machine (until cluster_grace is over)")  # fmt: skip
        return text, text
    processes = {str(n["id"]) for n in nodes if n.get("process")}
    return stopping_text(render.run_label(info), waiting, grace, elapsed, processes)


def lost_machine_wait(runs: list[dict[str, Any]], read: Callable[[], Settings]) -> float:
    """How much longer a stop of `runs` may take when one has nodes on other machines: a
    machine lost meanwhile has its nodes waited for until they are lost for good, up to
    `cluster_lost_after` + `cluster_heartbeat` + `cluster_grace` (the settings `read` from
    this FLOW_HOME, as the daemon reads them). 0 for runs all on one machine."""
    if not any(node.get("machine") for run in runs for node in run.get("nodes") or []):
        return 0.0
    settings = read()
    return settings.cluster_lost_after + settings.cluster_heartbeat + settings.cluster_grace


def stopping_text(
    label: str, waiting: list[str], grace: float, elapsed: float, processes: Collection[str] = ()
) -> tuple[str, str]:
    """The words of `stop_progress` for a run called `label` (and its key). A process node
    (one of `processes`) gets no STOP: SIGTERM at once, SIGKILL after the grace."""
    if not waiting:
        text = f"stopping {label}: recording the result"
        return text, text
    shown = _names(waiting)
    if all(node in processes for node in waiting):
        if elapsed < grace:
            phase, step = "term", f"sent SIGTERM; SIGKILL in {math.ceil(grace - elapsed)}s"
        else:
            phase, step = "kill", "sent SIGKILL"
    elif elapsed < grace:
        phase, step = "stop", f"SIGTERM in {math.ceil(grace - elapsed)}s"
    elif elapsed < grace * 1.5:
        phase, step = "term", f"sent SIGTERM; SIGKILL in {math.ceil(grace * 1.5 - elapsed)}s"
    else:
        phase, step = "kill", "sent SIGKILL"
    return f"stopping {label}: waiting for {shown} ({step})", f"{shown} {phase}"


def starting_text(
    label: str, waiting: list[str], timeouts: dict[str, float] | None, elapsed: float
) -> tuple[str, str]:
    """`starting demo: waiting for slow to connect (the start fails in 24s: ...)`, with
    each node's `timeouts` when known, else the time waited so far (and its key)."""
    shown = _names(waiting)
    fix = "a node's connect_timeout or the start_timeout setting gives it longer"
    if timeouts:
        left = max(0.0, min(timeouts.get(w, 0.0) for w in waiting) - elapsed)
        when = f"the start fails in {math.ceil(left)}s"
    else:
        when = f"{elapsed:.0f}s so far"
    return f"starting {label}: waiting for {shown} to connect ({when}; {fix})", shown


def _names(ids: list[str]) -> str:
    return ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")


class Background(Generic[T]):
    """A blocking call (a request that returns when the work is done) in a thread, so the
    caller can show progress meanwhile; `result()` re-raises what the call raised."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def wait_stopped(
    infos: list[dict[str, Any]],
    grace: float,
    budget: float,
    *,
    until: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> list[dict[str, Any]]:
    """Poll the runs until each has ended (or `budget` runs out, or `until()`: then one
    last look), keeping the status line on the first run still stopping; the latest info
    of each run."""
    from cli import client
    from cli.errors import DaemonUnreachable
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import Wait

    started = time.monotonic()
    latest = list(infos)
    with StatusLine() as line:
        while True:
            stopping = [i for i, info in enumerate(latest) if info.get("status") in ACTIVE]
            elapsed = time.monotonic() - started
            if not stopping or elapsed > budget:
                break
            text, key = stop_progress(latest[stopping[0]], grace, elapsed)
            if len(stopping) > 1:
                text += f" (and {len(stopping) - 1} more runs)"
            line.update(text, key + str(len(stopping)))
            ended = until()  # the stop is over: one last look at each run
            try:
                for n, i in enumerate(stopping):
                    wait = 0.0 if ended or n else poll_s  # block on the first run only
                    reply = client.call(
                        Wait(run=str(latest[i]["id"]), timeout=Seconds(wait)),
                        timeout=poll_s + 10.0,
                    )
                    latest[i] = reply.run
            except DaemonUnreachable:
                break  # `flow down`: the daemon may be gone before the last poll
            if ended:
                break
    return latest
