"""The pure parts of dora compatibility: the `dora` module's event form, the builder, the
send_output_raw handler's view rules, async waits, and what a plain node does not import."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from node_sdk import dora_compat
from node_sdk.dora_compat.dora import TIMEOUT_ERROR, _as_dora
from node_sdk.dora_compat.dora.builder import DataflowBuilder
from node_sdk.events import Event, EventType
from node_sdk.sample import SampleHandler
from node_sdk.surface import DoraSurface


def test_event_kind_is_dora() -> None:
    event = Event(EventType.INPUT, "x", b"", {})
    assert event["kind"] == "dora"
    assert event.kind == "dora"
    assert "kind" in event
    assert event.get("kind") == "dora"


def test_dora_events_carry_a_utc_datetime_and_arrow_bytes() -> None:
    pa = pytest.importorskip("pyarrow")
    stamp = 1_700_000_000_123_456_789
    event = _as_dora(Event(EventType.INPUT, "x", memoryview(b"12.5"), {"timestamp": stamp}))
    when = event["metadata"]["timestamp"]
    assert when == datetime.datetime(2023, 11, 14, 22, 13, 20, 123457, datetime.UTC)
    assert isinstance(event["value"], pa.UInt8Array)
    assert bytes(event["value"]) == b"12.5"
    assert event["value"].to_pylist() == list(b"12.5")
    assert TIMEOUT_ERROR == "Timeout event stream error: Receiver timed out"


def test_compat_folder_is_appended_once() -> None:
    folder = dora_compat.FOLDER
    assert (Path(folder) / "dora" / "__init__.py").is_file()
    assert dora_compat.with_folder(None) == folder
    once = dora_compat.with_folder("/a")
    assert once.split(":") == ["/a", folder]
    assert dora_compat.with_folder(once) == once


def test_builder_writes_a_dataflow(tmp_path: Path) -> None:
    with DataflowBuilder("demo") as flow:
        cam = flow.add_node(id="cam", path="cam.py", env={"W": "640"})
        cam.add_input("tick", "dora/timer/millis/20")
        image = cam.add_output("image")
        assert cam.add_output("image").output_id == "image"  # declared once
        flow.add_node(id="plot").path("plot.py").add_input(
            "image", image, queue_size=2, queue_policy="backpressure"
        )
    flow.to_yaml(str(tmp_path / "d.yml"))
    spec = yaml.safe_load((tmp_path / "d.yml").read_text())
    assert spec == {
        "nodes": [
            {"id": "cam", "path": "cam.py", "env": {"W": "640"},
             "inputs": {"tick": "dora/timer/millis/20"}, "outputs": ["image"]},
            {"id": "plot", "path": "plot.py", "inputs": {"image": {
                "source": "cam/image", "queue_size": 2, "queue_policy": "backpressure"}}},
        ]
    }  # fmt: skip
    with pytest.raises(ValueError, match="queue_policy"):
        cam.add_input("x", "a/b", queue_policy="lossy")
    with pytest.raises(ValueError, match="queue_size"):
        cam.add_input("x", "a/b", queue_size=0)


class FakeSend:
    """Stands for the sender's send_buffer: records what it sent when its block ends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    @contextlib.contextmanager
    def buffer(self, nbytes: int) -> Iterator[memoryview]:
        data = bytearray(nbytes)
        view = memoryview(data)
        yield view  # an exception here sends nothing, as the sender's
        self.sent.append(bytes(data))


def test_handler_refuses_to_send_under_a_view_and_sends_once() -> None:
    fake = FakeSend()
    handler = SampleHandler(fake.buffer(4))
    view = handler.as_memoryview()
    view[:] = b"abcd"
    with pytest.raises(RuntimeError, match="still open"):
        handler.send()
    assert fake.sent == []
    view.release()
    handler.send()
    assert fake.sent == [b"abcd"]
    with pytest.raises(RuntimeError, match="already"):
        handler.send()
    with pytest.raises(RuntimeError, match="already"):
        handler.as_buffer()


def test_handler_with_block() -> None:
    fake = FakeSend()
    handler = SampleHandler(fake.buffer(2))

    def fail_in_block() -> None:
        with handler as buf:
            memoryview(buf)[:] = b"no"
            raise KeyError("the block failed")

    with pytest.raises(KeyError):
        fail_in_block()
    assert fake.sent == []  # nothing sent; still sendable
    with handler as buf:
        assert buf is handler.as_buffer()
        memoryview(buf)[:] = b"ok"
    assert fake.sent == [b"ok"]
    kept = SampleHandler(fake.buffer(1))
    with pytest.raises(RuntimeError, match="still open"), kept as buf:
        held = memoryview(buf)
    held.release()


class QueueNode(DoraSurface):
    """`next` from a queue the test fills, in the worker thread the async calls use."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.calls = 0
        self.timed_out = False  # every call returns an event

    def try_recv(self) -> Event | None:
        return None  # nothing queued: every call goes to the worker thread

    def next(self, timeout: float | None = None) -> Event | None:
        self.calls += 1
        self.ready.wait(5)
        self.ready.clear()
        return Event(EventType.INPUT, f"e{self.calls}")


def test_a_cancelled_recv_async_loses_no_event() -> None:
    async def main() -> list[str | None]:
        node = QueueNode()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.recv_async(), 0.05)
        node.ready.set()
        first = await node.recv_async()  # the cancelled call's event, not a new call's
        assert node.calls == 1
        node.ready.set()
        second = await node.recv_async()
        return [first.id if first else None, second.id if second else None]

    assert asyncio.run(main()) == ["e1", "e2"]


def test_a_node_that_does_not_await_imports_no_event_loop() -> None:
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import node_sdk.node\n"
        "import dora, dora.builder\n"
        "heavy = ('asyncio', 'trio', 'anyio', 'yaml', 'pyarrow')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, dora_compat.FOLDER], cwd=REPO, capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_dora_timer_tick_value_is_an_empty_null_array() -> None:
    pa = pytest.importorskip("pyarrow")
    tick = _as_dora(Event(EventType.INPUT, "tick", None, {"timestamp": 0}))
    assert tick["value"].type == pa.null()
    assert len(tick["value"]) == 0
    stop = _as_dora(Event(EventType.STOP, "STOP_REQUESTED"))
    assert stop["value"] is None


VIEW_RULES = """
import contextlib, gc, struct, sys
sys.path.insert(0, sys.argv[1])
from node_sdk.sample import SampleHandler

sent = []


@contextlib.contextmanager
def buffer(nbytes):
    data = bytearray(nbytes)
    yield memoryview(data)
    sent.append(bytes(data))


handler = SampleHandler(buffer(4))
buf = handler.as_buffer()
view = memoryview(buf)
struct.pack_into("<I", buf, 0, 7)
try:
    handler.send()
except RuntimeError as exc:
    assert "still open" in str(exc)
else:
    raise AssertionError("sent under a view")
view.release()
handler.send()
assert sent == [struct.pack("<I", 7)], sent
for taken in (lambda: memoryview(buf),):
    try:
        taken()
    except BufferError:
        pass
    else:
        raise AssertionError("a view after the send")
dropped = SampleHandler(buffer(2))
kept = dropped.as_buffer()
del dropped
gc.collect()
try:
    memoryview(kept)
except BufferError:
    pass
else:
    raise AssertionError("a view of a dropped handler's buffer")
print("view rules hold")
"""


@pytest.mark.parametrize("python", ["python3.12", "python3.13"])
def test_view_rules_on_newer_pythons(python: str) -> None:
    """Python 3.12+ counts views itself (PEP 688) and refuses them with BufferError after
    the send, as dora does; run there when that interpreter is on this machine."""
    import shutil

    # on PATH, or a pyenv build (whose shim fails unless that version is selected)
    pyenv = Path.home().glob(f".pyenv/versions/{python.removeprefix('python')}*/bin/{python}")
    candidates = [c for c in [shutil.which(python), *map(str, sorted(pyenv))] if c]
    works = [c for c in candidates if subprocess.run([c, "-V"], check=False).returncode == 0]
    if not works:
        pytest.skip(f"no {python} here")
    found = works[0]
    done = subprocess.run(
        [found, "-c", VIEW_RULES, str(REPO)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "view rules hold", done.stdout + done.stderr
