"""Log following: growth, partial lines, rotation by rename, truncation, late files."""

from __future__ import annotations

from pathlib import Path

from cli.follow import LogFollower
from daemon.model.logformat import LogRecord


def rec(t: float, msg: str) -> str:
    return LogRecord(time=t, stream="stdout", message=msg).to_json() + "\n"


def messages(follower: LogFollower, final: bool = False) -> list[tuple[str, str]]:
    return [(node, r.message) for node, r in follower.poll(final=final)]


def test_follows_growth_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    follower = LogFollower({"a": log})
    assert messages(follower) == []  # not there yet
    log.write_text(rec(1, "one"))
    assert messages(follower) == [("a", "one")]
    with log.open("a") as f:
        f.write(rec(2, "two")[:10])
    assert messages(follower) == []
    with log.open("a") as f:
        f.write(rec(2, "two")[10:] + "plain tail")
    assert messages(follower) == [("a", "two")]
    assert messages(follower, final=True) == [("a", "plain tail")]
    follower.close()


def test_rotation_by_rename_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(rec(1, "one"))
    follower = LogFollower({"a": log})
    assert messages(follower) == [("a", "one")]
    with log.open("a") as f:
        f.write(rec(2, "two"))
    log.rename(tmp_path / "a.log.1")
    log.write_text(rec(3, "three"))
    assert messages(follower) == [("a", "two"), ("a", "three")]
    follower.close()


def test_truncation_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(rec(1, "one") + rec(2, "two"))
    follower = LogFollower({"a": log})
    assert len(messages(follower)) == 2
    log.write_text(rec(3, "new"))
    assert messages(follower) == [("a", "new")]
    follower.close()


def test_several_nodes_merge_by_time(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(rec(1, "a1") + rec(3, "a3"))
    (tmp_path / "b.log").write_text(rec(2, "b2") + "not json\n" + rec(4, "b4"))
    follower = LogFollower({"a": tmp_path / "a.log", "b": tmp_path / "b.log"})
    assert [m for _, m in messages(follower)] == ["a1", "b2", "not json", "a3", "b4"]
    follower.close()


def test_short_ids_grow_until_unique() -> None:
    from cli.render import short_ids

    ids = ["01a20882-1b6d-7249", "01a20882-1bef-7d5d", "01a30000-0000-0000"]
    assert short_ids(ids) == {
        "01a20882-1b6d-7249": "01a20882-1b6",
        "01a20882-1bef-7d5d": "01a20882-1be",
        "01a30000-0000-0000": "01a30000-000",
    }
    assert short_ids(["abcdefghij", "zz"]) == {"abcdefghij": "abcdefgh", "zz": "zz"}
