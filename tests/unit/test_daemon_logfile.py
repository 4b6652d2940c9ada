"""daemon.log's handler on a real file: rotated at its size into daemon.log.1 (one kept),
every line in one of the two, in order, and both 0600."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from daemon.logfile import PatientFileHandler


def test_the_log_is_rotated_at_its_size_and_keeps_one_old_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    handler = PatientFileHandler(path, max_bytes=4000)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test.daemon.logfile")
    log.propagate = False
    log.addHandler(handler)
    try:
        for n in range(1000):  # about 20 KB: five rotations
            log.warning("line %04d of the flood", n)
    finally:
        log.removeHandler(handler)
        handler.close()
    old, new = tmp_path / "daemon.log.1", path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.log", "daemon.log.1"]
    for file in (old, new):  # a line over its size at most
        assert file.stat().st_size <= 4000 + 100
    lines = old.read_text().splitlines() + new.read_text().splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 1000))  # the newest, in order, none missing
    for file in (old, new):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
