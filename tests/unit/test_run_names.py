"""Run names (daemon/model/run_names.py): what may be one, and how a RUN picks its run."""

from __future__ import annotations

import pytest

from daemon.model.run_names import pick_run, run_name_problem

OLD = {"id": "01a22f8f-0000-7000-8000-000000000001", "name": None, "status": "succeeded"}
HIJACK = {"id": "01a22f90-0000-7000-8000-000000000002", "name": "01a22f8f", "status": "running"}
ACTIVE = ("starting", "running")


@pytest.mark.parametrize(
    "name",
    ["", " ", "a\x1bb", "a\nb", "a\u202eb", "a\u200bb", "01a22f8f", "0-1", "0ABC", "x" * 257],
)
def test_a_bad_name_has_a_problem(name: str) -> None:
    assert run_name_problem(name) is not None


@pytest.mark.parametrize(
    "name", ["ci", "bad", "c5", "deaf", "42", "nightly run 42", "café", "run-01a22f8f", "x" * 256]
)
def test_a_good_name_has_none(name: str) -> None:
    assert run_name_problem(name) is None


def test_an_id_prefix_wins_over_a_name_made_before_names_were_checked() -> None:
    matches = [HIJACK, OLD]  # newest first, as the store gives them
    assert pick_run("01a22f8f", matches, ACTIVE) == OLD
    assert pick_run("01A22F8F", matches, ACTIVE) == OLD
    assert pick_run(str(HIJACK["id"]), matches, ACTIVE) == HIJACK


def test_a_prefix_of_several_ids_is_ambiguous_and_a_name_is_found() -> None:
    assert pick_run("01a22f", [HIJACK, OLD], ACTIVE) == [HIJACK["id"], OLD["id"]]
    named = {**OLD, "name": "ci"}
    assert pick_run("ci", [named], ACTIVE) == named
    assert pick_run("nope", [], ACTIVE) == []
