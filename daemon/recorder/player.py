"""The replay player node: plays one node's recorded outputs into a live run (`flow replay`).

`flow replay REC --replace NODE` runs NODE as this program:
`player.py REC NODE [--speed X] [--loop]`. It sends the messages recorded on `NODE/*`
in their recorded order, each with its metadata and a value of its exact kind, at its
recorded time since the first one, divided by the speed; `--loop` starts over at the end.
It ends (end-of-stream on each output) when the recording does, or on STOP.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

from daemon.model.recording import decode_message
from daemon.model.recording_chunks import (
    READ_ERRORS,
    UnboundedChunk,
    check_chunks,
    records_to_cut,
)
from node_sdk import Node

_SAID_UNFINISHED: set[str] = set()  # the recordings said to be unfinished (one per player)


def recorded(path: str, node_id: str, outputs: list[str]) -> Iterator[tuple[str, int, bytes]]:
    """(output, log time, record) of the node's recorded outputs, in log time order; for a
    file its recorder never finished (killed: no summary to seek with), in the order
    written, up to the cut."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    check_chunks(path)  # again: the file may have changed since `flow replay` checked it
    topics = [f"{node_id}/{output}" for output in outputs]
    try:
        with open(path, "rb") as stream:
            finished = make_reader(stream).get_summary() is not None
    except (McapError, *READ_ERRORS):
        finished = False
    if not finished:
        if path not in _SAID_UNFINISHED:  # once, not on every round of a --loop
            _SAID_UNFINISHED.add(path)
            print(f"{path} was not finished (its recorder ended before writing its end): its "
                  "records up to the cut are replayed, in the order written", file=sys.stderr,
                  flush=True)  # fmt: skip
        yield from _written(path, topics)
        return
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        for _, channel, message in reader.iter_messages(topics=topics, log_time_order=True):
            yield channel.topic.partition("/")[2], message.log_time, message.data


def _written(path: str, topics: list[str]) -> Iterator[tuple[str, int, bytes]]:
    """The records of `topics` in a file read from its start, up to its first damaged one."""
    from mcap.records import Channel, Message

    wanted: dict[int, str] = {}
    for record in records_to_cut(path):
        if isinstance(record, Channel) and record.topic in topics:
            wanted[record.id] = record.topic.partition("/")[2]
        elif isinstance(record, Message) and record.channel_id in wanted:
            yield wanted[record.channel_id], record.log_time, record.data


def wait_until(node: Node, due: float) -> bool:
    """Wait until `due` (monotonic), answering the node's events; False on STOP. Behind
    time, it still looks once: a STOP is never missed for being late."""
    while True:
        left = due - time.monotonic()
        event = node.next(timeout=max(left, 0.0))
        if event is None:
            if not node.timed_out:
                return False  # the event stream ended
            if due - time.monotonic() <= 0:
                return True
        elif event["type"] == "STOP":
            return False


class Played:
    """How many records were sent, and how many could not be read (skipped)."""

    def __init__(self) -> None:
        self.sent = 0
        self.skipped = 0


def play(node: Node, args: argparse.Namespace, outputs: list[str], played: Played) -> None:
    """Send the recording once (or, looping, until STOP), counting into `played`. A record
    that does not decode (a damaged or crafted file) is skipped, its first cause said."""
    while True:
        started, first = 0.0, None
        for output, log_time, data in recorded(args.recording, args.node, outputs):
            if first is None:  # the clock starts at the first record, once the file is open
                started, first = time.monotonic(), log_time
            if not wait_until(node, started + (log_time - first) / 1e9 / args.speed):
                return
            try:
                value, metadata, _ = decode_message(data)
            except ValueError as exc:
                if not played.skipped:
                    print(f"skipped a record of {args.node}/{output} that cannot be read: "
                          f"{exc}", file=sys.stderr, flush=True)  # fmt: skip
                played.skipped += 1
                continue
            node.send_output(output, value, metadata)
            played.sent += 1
        if not args.loop or first is None:
            return


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flow-replay-player")
    parser.add_argument("recording")
    parser.add_argument("node")
    parser.add_argument("--outputs", required=True, help="the node's outputs, comma-separated")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--loop", action="store_true")
    args = parser.parse_args(argv)
    from mcap.exceptions import McapError  # the record extra: `flow replay` checked it is in

    played = Played()
    with Node() as node:
        try:
            play(node, args, args.outputs.split(","), played)
        except UnboundedChunk as exc:  # nothing of that file is decompressed
            print(f"not replayed: {exc}", file=sys.stderr, flush=True)
            return 2
        except (*READ_ERRORS, McapError) as exc:  # damaged past its summary's checks
            print(f"not replayed on: {args.recording} could not be read after {played.sent} "
                  f"messages: {exc}", file=sys.stderr, flush=True)  # fmt: skip
            return 2
    skipped = f" ({played.skipped} unreadable records skipped)" if played.skipped else ""
    print(f"replayed {played.sent} messages of {args.node} from {args.recording}{skipped}",
          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
