"""The state-store watcher is auxiliary work: whatever recreating the store raises, the
daemon goes on and `flow status` says why (issue 11 item 11, SPEC 7.2)."""

from __future__ import annotations

import errno
from typing import Any

import attrs
import pytest

from daemon.run import store_watch


@attrs.define
class ReadOnlyStore:
    """A store whose file is gone and whose folder refuses a new one (EROFS)."""

    def reopen(self) -> None:
        raise OSError(errno.EROFS, "Read-only file system")


@attrs.define
class FakeRuntime:
    store: Any = attrs.field(factory=ReadOnlyStore)
    runs: dict[str, Any] = attrs.field(factory=dict)
    origin: str = "daemon"
    degraded: list[str] = attrs.field(factory=list)


@pytest.mark.parametrize("error", [OSError(errno.EROFS, "Read-only file system")])
def test_a_store_that_cannot_be_recreated_degrades_and_never_raises(error: OSError) -> None:
    rt = FakeRuntime()
    store_watch._recreate(rt, "state.db was deleted")  # type: ignore[arg-type]
    [line] = rt.degraded
    assert line.startswith("state store: state.db was deleted; ")
    assert "Read-only file system" in line
