"""`flow replay REC`: run a recorded dataflow with some nodes played from the recording."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.errors import BAD_INPUT, CliError

PLAYER = Path(__file__).resolve().parents[2] / "daemon" / "recorder" / "player.py"


def register(sub: Any) -> None:
    from cli.commands.run import add_run_options

    p = sub.add_parser(
        "replay",
        help="run a recorded dataflow with nodes replaced by their recorded outputs",
        description="Run the dataflow of an MCAP recording (its attachment, or --dataflow) in "
        "the foreground; each --replace NODE is not run but played from the recording: its "
        "outputs' messages with their recorded timing (divided by --speed), order, metadata "
        "and values, into the live rest of the graph. --info only describes the recording.",
    )
    p.add_argument("recording", metavar="REC", help="an MCAP file made by --record or flow record")
    p.add_argument("--info", action="store_true",
                   help="list its outputs, message counts and duration; run nothing")  # fmt: skip
    p.add_argument("--dataflow", metavar="FILE", type=Path, default=None,
                   help="run this dataflow file instead of the recorded one")  # fmt: skip
    p.add_argument("--replace", metavar="NODE", action="append", default=[],
                   help="play NODE's outputs from the recording instead of running it "
                   "(repeatable)")  # fmt: skip
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="play X times as fast as recorded (default 1)")  # fmt: skip
    p.add_argument("--loop", action="store_true",
                   help="start the replaced nodes' recording over at its end, until "
                   "stopped")  # fmt: skip
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.commands.run import foreground
    from cli.recording import read_contents

    rec = str(Path(args.recording).expanduser().absolute())
    contents = read_contents(rec)
    if args.info:
        return info(rec, contents)
    if not args.speed > 0:
        raise CliError(f"--speed must be more than 0 (got {args.speed:g})", BAD_INPUT)
    path, text = _dataflow(args.dataflow, contents)
    replayed = replaced(text, path, rec, args.replace, args.speed, args.loop, contents)
    return foreground(path, replayed, args)


def _dataflow(option: Path | None, contents: Any) -> tuple[Path, str]:
    """The dataflow to run: --dataflow's file, or the recorded one (its relative paths taken
    from the folder the recorded run's file was in)."""
    from cli.commands.start import read_dataflow

    if option is not None:
        return read_dataflow(str(option))
    if contents.dataflow is None:
        raise CliError("the recording has no dataflow attachment: give --dataflow FILE",
                       BAD_INPUT)  # fmt: skip
    recorded = (contents.metadata.get("flow.run") or {}).get("dataflow") or "dataflow.yml"
    return Path(recorded), contents.dataflow


def replaced(
    text: str, path: Path, rec: str, nodes: list[str], speed: float, loop: bool, contents: Any
) -> str:
    """The dataflow text with each of `nodes` run as the player of its recorded outputs."""
    import yaml

    if not nodes:
        return text
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not YAML: {exc}", BAD_INPUT) from None
    entries = document.get("nodes") if isinstance(document, dict) else None
    by_id = {n.get("id"): n for n in entries or [] if isinstance(n, dict)}
    for node_id in dict.fromkeys(nodes):
        entry = by_id.get(node_id)
        if entry is None:
            known = ", ".join(str(k) for k in by_id) or "none"
            raise CliError(f"--replace {node_id}: no such node in {path} (nodes: {known})",
                           BAD_INPUT)  # fmt: skip
        outputs = [str(o) for o in entry.get("outputs") or []]
        missing = [o for o in outputs if f"{node_id}/{o}" not in contents.channels]
        if not outputs or len(missing) == len(outputs):
            raise CliError(f"--replace {node_id}: the recording has none of its outputs "
                           f"({', '.join(outputs) or 'it declares none'})", BAD_INPUT)  # fmt: skip
        args = [rec, node_id, "--outputs", ",".join(outputs), "--speed", repr(speed)]
        keep = {k: entry[k] for k in ("id", "name", "description", "outputs") if k in entry}
        entry.clear()
        entry.update(keep, path=str(PLAYER), args=[*args, *(["--loop"] if loop else [])])
    return str(yaml.safe_dump(document, sort_keys=False))


def info(rec: str, contents: Any) -> int:
    """The recording's outputs with their counts and times, its duration and attachments."""
    from cli import render
    from cli.recording import holds

    rows: list[tuple[list[render.Cell], list[render.Cell]]] = []
    for channel in sorted(contents.channels.values(), key=lambda c: c.topic):
        rows.append(([channel.topic, str(channel.messages)], []))
    render.table(["OUTPUT", "MESSAGES"], rows)
    render.info(f"{holds(contents)} over {contents.duration_s:.3f} s")
    if contents.unfinished:
        render.warning(f"{rec} was not finished (still being recorded, or its recorder ended "
                       "early): "
                       "these are the messages up to where it is cut")  # fmt: skip
    run = contents.metadata.get("flow.run") or {}
    if run:
        render.info(f"run {run.get('name') or run.get('id', '?')} of {run.get('dataflow', '?')}")
    tally = contents.metadata.get("flow.recording")
    missed = [f"{t}: {v}" for t, v in (tally or {}).items() if "missed=0" not in v]
    if tally is None:
        render.warning("the recording was not finished: no tally of what it missed")
    for line in missed:
        render.warning(f"not all recorded: {line}")
    if contents.attachments:
        render.info(f"attachments: {', '.join(contents.attachments)}")
    return 0
