"""Where a recovered run's recording goes on: the first free `NAME.recovered-N.EXT`."""

from __future__ import annotations

from pathlib import Path

from daemon.run.recording import recovered_path


def test_the_first_free_number_next_to_the_first_file(tmp_path: Path) -> None:
    first = tmp_path / "drive.mcap"
    first.touch()
    assert recovered_path(str(first)) == str(tmp_path / "drive.recovered-1.mcap")
    (tmp_path / "drive.recovered-1.mcap").touch()
    assert recovered_path(str(first)) == str(tmp_path / "drive.recovered-2.mcap")


def test_a_second_recovery_does_not_stack_its_suffix(tmp_path: Path) -> None:
    (tmp_path / "drive.recovered-1.mcap").touch()
    again = recovered_path(str(tmp_path / "drive.recovered-1.mcap"))
    assert again == str(tmp_path / "drive.recovered-2.mcap")
