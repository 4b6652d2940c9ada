"""The fatal list is explicit, complete, and the one the root catch point reads (SPEC 7.2)."""

from __future__ import annotations

import pytest

from daemon.main import find_fatal
from daemon.model import errors


def every_subclass(kind: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for sub in kind.__subclasses__():
        found |= {sub, *every_subclass(sub)}
    return found


def test_the_fatal_list_is_exactly_the_three_documented_classes() -> None:
    assert set(errors.FATAL_ERRORS) == {
        errors.ControlSocketUnavailable,
        errors.StateStoreUnusable,
        errors.BrokenInvariant,
    }
    assert set(errors.FATAL_ERRORS) == every_subclass(errors.FatalError)
    for kind in errors.FATAL_ERRORS:
        assert kind.__name__ in (errors.__doc__ or "")


@pytest.mark.parametrize("fatal", errors.FATAL_ERRORS)
def test_the_root_finds_a_fatal_error_inside_groups(fatal: type[errors.FatalError]) -> None:
    error = fatal("broken")
    nested = ExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [error])])
    assert find_fatal(nested) is error


@pytest.mark.parametrize(
    "error",
    [
        errors.StateWriteFailed("disk full"),
        errors.KeeperLost("run keeper lost"),
        RuntimeError("boom"),
        ExceptionGroup("many", [errors.BadRequest("x"), KeyError("k")]),
    ],
)
def test_anything_else_is_recoverable(error: BaseException) -> None:
    assert find_fatal(error) is None


def test_a_fatal_error_off_the_list_is_not_taken_as_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("daemon.main.FATAL_ERRORS", (errors.StateStoreUnusable,))
    assert find_fatal(errors.BrokenInvariant("x")) is None
