"""The one paths module: which endpoints may name an observer (a lease unlinks its socket)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_sdk import paths


@pytest.mark.parametrize(
    ("endpoint", "accepted"),
    [
        ("ipc://{s}/obs-123-abcdef", True),
        ("ipc://{s}/control", False),  # the daemon's own socket: a lease would unlink it
        ("ipc://{s}/0123456789ab/n0i0", False),  # a node's input
        ("ipc://{s}/../obs-123-abcdef", False),
        ("ipc://{s}/obs-123-abcdef/../control", False),
        ("ipc:///elsewhere/obs-123-abcdef", False),
        ("tcp://127.0.0.1:5555", False),
    ],
)
def test_only_observer_sockets_are_accepted_for_observers(
    tmp_path: Path, endpoint: str, accepted: bool
) -> None:
    sockets = tmp_path / "s"
    path = paths.observer_socket(sockets, endpoint.format(s=sockets))
    assert (path is not None) is accepted
    assert paths.observer_socket(sockets, paths.observer_endpoint(sockets, 9, "0a1b2c"))
