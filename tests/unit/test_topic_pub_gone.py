"""`flow topic pub` into an input that stops taking messages (its run ended meanwhile):
one line naming the input and how many went, not the socket's endpoint."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from cli.commands import topic_pub
from cli.errors import CliError


def test_an_input_that_takes_nothing_is_named_with_what_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(topic_pub, "CREDIT_WAIT_S", 0.2)
    monkeypatch.setattr(topic_pub, "LINGER_MS", 0)
    nobody = types.SimpleNamespace(endpoint=f"ipc://{tmp_path / 'gone'}", policy="drop_oldest",
                                   queue_size=10, source="~pub/out")  # fmt: skip
    with pytest.raises(CliError) as refused:  # the queue fills (1000), then a send times out
        topic_pub._send(nobody, ["x"] * 5000, None, 0.0, "sink/x")
    assert str(refused.value) == (
        "input sink/x took nothing for 0.2s after 1000 message(s): its node or its run ended, "
        "or it is stuck"
    )
