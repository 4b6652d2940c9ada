"""The folder that makes `from dora import Node` work in nodes flow starts (`python -m` prints it).

`FOLDER` holds one package, `dora`, flow's compatibility module. The daemon appends it to
every spawned node's PYTHONPATH; a node started by hand (a dynamic node) gets it with
`PYTHONPATH=$(python -m node_sdk.dora_compat)`. Entries of PYTHONPATH come before the
interpreter's site-packages, so under flow `dora` is this module even where dora-rs is
installed (dora-rs's own Node could not talk to flow's daemon anyway), while a PYTHONPATH
the node's `env:` sets itself still comes first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

FOLDER: Final = str(Path(__file__).resolve().parent)


def with_folder(pythonpath: str | None) -> str:
    """`pythonpath` with `FOLDER` appended (once)."""
    parts = [p for p in (pythonpath or "").split(os.pathsep) if p]
    if FOLDER not in parts:
        parts.append(FOLDER)
    return os.pathsep.join(parts)
