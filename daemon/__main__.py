"""`python -m daemon serve|end-orphans|join [--home PATH]`: the flow daemon's process entries.

`serve` runs the daemon in the foreground (`--machine`, `--listen`: its cluster role,
docs/cluster.md; `--metrics ADDR:PORT`: its Prometheus endpoint, docs/telemetry.md);
`end-orphans` ends the run keepers a dead daemon left (what `flow down` does when no daemon
answers) and prints how many; `join` admits this home to a cluster with the token read on
stdin (never argv: other users see a command line) and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from daemon.model import settings
from node_sdk import paths


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon", description="the flow daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve until shut down")
    serve.add_argument("--home", type=Path, default=None, help="FLOW_HOME to serve")
    serve.add_argument("--machine", default=None, help="this machine's name in a cluster")
    serve.add_argument("--listen", default=None, help="coordinate on tcp://ADDR:PORT")
    serve.add_argument("--insecure-loopback", action="store_true", help="plain TCP, loopback")
    serve.add_argument("--metrics", default=None, help="serve /metrics on ADDR:PORT")
    serve.add_argument("--otlp", default=None, help="push metrics over OTLP/HTTP to URL")
    join = sub.add_parser("join", help="join a cluster with the token on stdin")
    join.add_argument("--home", type=Path, default=None, help="FLOW_HOME that joins")
    join.add_argument("--machine", required=True, help="this machine's name")
    orphans = sub.add_parser("end-orphans", help="end the run keepers of a dead daemon")
    orphans.add_argument("--home", type=Path, default=None, help="FLOW_HOME to clean up")
    args = parser.parse_args()
    home = (args.home or paths.flow_home()).expanduser().resolve()
    if args.command == "end-orphans":
        from daemon.control.orphans import end_orphaned_keepers

        print(end_orphaned_keepers(home))
        return 0
    os.environ["FLOW_HOME"] = str(home)  # nodes inherit it, and the CLI finds the same home
    try:  # read once, at start: a bad value is one line and no daemon
        settings.install(settings.load(home))
    except settings.SettingsError as exc:
        print(f"flow daemon: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "join":
        return _join(home, args.machine)
    from daemon.model.cluster import ClusterConfigError, check_machine_name, parse_listen
    from daemon.model.metrics import (
        MetricsAddressError,
        Telemetry,
        check_otlp_url,
        parse_metrics_address,
    )

    try:
        metrics = None
        if args.metrics is not None or args.otlp is not None:
            metrics = Telemetry(
                None if args.metrics is None else parse_metrics_address(args.metrics),
                None if args.otlp is None else check_otlp_url(args.otlp),
            )
        listen = None
        if args.listen is not None:
            listen = parse_listen(args.listen, plain=args.insecure_loopback)
        elif args.insecure_loopback:
            raise ClusterConfigError("--insecure-loopback needs --listen")
        machine = None if args.machine is None else check_machine_name(args.machine)
    except (ClusterConfigError, MetricsAddressError) as exc:
        print(f"flow daemon: error: {exc}", file=sys.stderr)
        return 2
    from daemon.cluster.start import ClusterOptions
    from daemon.main import run_daemon  # the daemon's imports are for `serve` only

    return run_daemon(home, ClusterOptions(machine=machine, listen=listen), metrics)


def _join(home: Path, machine: str) -> int:
    from daemon.cluster.join import JoinRefused, join
    from daemon.model.cluster import ClusterConfigError
    from node_sdk import private

    token = sys.stdin.readline(4096)
    try:
        private.prepare_home(home)
        membership = join(home, machine, token)
    except (JoinRefused, ClusterConfigError, private.NotPrivate) as exc:
        print(f"flow: error: {exc}", file=sys.stderr)
        return 1
    print(f"joined the cluster of {membership.coordinator_address} as {membership.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
