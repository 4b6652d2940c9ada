"""`python -m daemon.keeper CONFIG`: run one run's keeper process (daemon/keeper/process.py)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import zmq

from daemon.keeper.process import Keeper
from daemon.keeper.stdout_output import end_context
from daemon.model import settings


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # once: a second SIGTERM (a session ending) must not cut `serve`'s cleanup short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> int:
    """`python -m daemon.keeper '{"endpoint": ..., "grace": ...}'`."""
    config = json.loads(sys.argv[1])
    settings.install(settings.from_mapping(config.get("settings", {}), "the daemon"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s keeper: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when nodes stop
    # SIGTERM ends the keeper through `serve`'s cleanup: its nodes and what they left go too
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        keeper = Keeper.bind(context, config["endpoint"], float(config["grace"]))
        keeper.run_sockets = Path(config["endpoint"].removeprefix("ipc://")).parent
        keeper.run_folder = keeper.run_sockets.name
        if config.get("ledger"):
            keeper.ledger = Path(config["ledger"])
        # a process of its own: every descendant is the run's, orphans come back to it
        keeper.subreaper = True
        keeper.descendants.whole_process = True
    except zmq.ZMQError as exc:
        print(f"keeper: cannot bind {config['endpoint']}: {exc}", file=sys.stderr)
        return 1
    keeper.serve()
    end_context(context, keeper.ended_outputs.lingering)
    return 0


raise SystemExit(main())
