"""`flow topic list|info|echo|hz|pub`: look at the messages of a running dataflow as they
flow, and send some in."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from cli.run_ref import add_run_argument

INFO_SAMPLE_S = 2.0  # `topic info` watches the topic this long for types and sizes
INFO_SAMPLE_MAX = 200  # and stops after this many messages


def register(sub: Any) -> None:
    from cli.commands import topic_pub
    from cli.durations import duration_arg

    p = sub.add_parser(
        "topic",
        help="list, inspect, print, time or send the messages of a running dataflow",
        description="Look at the messages of a live run as they flow: list its outputs, "
        "describe one, print its messages, measure its rate, or send messages into an input.",
        epilog="example: flow topic hz demo camera/image --count 60",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = _verb(verbs, "list", "every output of a run with its receivers",
                    "flow topic list demo")  # fmt: skip
    add_run_argument(listing)
    info = _verb(
        verbs, "info", "the node, counts, rate, receivers and queues of NODE/OUTPUT, and the "
        "type and sizes of its messages seen for a moment", "flow topic info demo camera/image",
    )  # fmt: skip
    echo = _verb(verbs, "echo", "print messages of NODE/OUTPUT as they flow, with their time"
                 " (what it skips when it falls behind is counted on stderr)",
                 "flow topic echo demo camera/image --count 5 --json")  # fmt: skip
    hz = _verb(verbs, "hz", "rate and intervals of NODE/OUTPUT, from the senders' timestamps",
               "flow topic hz demo camera/image --count 60")  # fmt: skip
    for verb in (info, echo, hz):
        add_run_argument(verb)  # argparse gives a lone word to NODE/OUTPUT
        verb.add_argument("topic", metavar="NODE/OUTPUT", help="the output to observe")
    info.add_argument(
        "--sample", type=duration_arg, default=INFO_SAMPLE_S, metavar="DURATION",
        help=f"watch the messages this long (default {INFO_SAMPLE_S:g}s; 0: not at all)",
    )  # fmt: skip
    info.add_argument("--json", action="store_true", help="one JSON object")
    echo.add_argument("--count", type=int, default=0, metavar="N", help="stop after N messages")
    echo.add_argument("--json", action="store_true", help="one JSON object per message")
    hz.add_argument("--count", type=int, default=0, metavar="N",
                    help="stop after N messages and print their overall rate")  # fmt: skip
    hz.add_argument("--window", type=duration_arg, default=5.0, metavar="DURATION",
                    help="the span each line's rate is taken over (default 5s)")  # fmt: skip
    hz.add_argument("--duration", type=duration_arg, default=0.0, metavar="DURATION",
                    help="stop after this long and print the overall rate")  # fmt: skip
    pub = _verb(
        verbs, "pub", "send messages into NODE/INPUT of a live run (one per VALUE), as a "
        "source of their own that ends when they are sent",
        "flow topic pub demo detector/threshold 0.5 --as json",
    )  # fmt: skip
    topic_pub.add_arguments(pub)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import render
    from cli.commands import topic_pub, topic_watch
    from cli.errors import BAD_INPUT, CliError
    from cli.run_ref import target_run

    if args.verb == "pub" and args.run is not None and "/" in args.run and "/" not in args.target:
        # `pub NODE/INPUT V1 V2`: argparse gave the first word to RUN; NODE/INPUT has a slash
        args.run, args.target, args.values = None, args.run, [args.target, *args.values]
    args.run = target_run(args.run)
    if args.verb == "list":
        return listing(args.run)
    if args.verb == "info":
        return info(args.run, args.topic, args.sample, args.json)
    if args.verb == "pub":
        return topic_pub.publish(args)
    if args.count < 0:
        raise CliError(f"--count must be 0 (no limit) or more (got {args.count})", BAD_INPUT)
    if args.verb == "hz" and not args.window > 0:
        raise CliError("--window must be more than 0 (try 5s)", BAD_INPUT)
    from cli.keys import signals_end_the_view

    with signals_end_the_view(), topic_watch.Observer(args.run, args.topic) as observer:
        try:
            if args.verb == "echo":
                return topic_watch.echo(observer, args.count, args.json)
            return topic_watch.hertz(observer, args.window, args.duration, args.count)
        except topic_watch.RunEnded as ended:  # what it had to say was said before
            render.info(str(ended))
            return 0


def listing(run_ref: str) -> int:
    from cli import client, render
    from daemon.model.requests_watch import TopicList

    reply = client.call(TopicList(run=run_ref))
    rows: list[tuple[list[render.Cell], list[render.Cell]]] = []
    for topic in reply.topics:
        rate = topic.rate
        rows.append(
            (
                [topic.topic, ", ".join(topic.receivers) or "-",
                 "-" if rate is None else f"{rate:.1f}"],
                [],
            )
        )  # fmt: skip
    render.table(["TOPIC", "RECEIVERS", "RATE/S"], rows)
    return 0


def info(run_ref: str, topic: str, sample_s: float, as_json: bool) -> int:
    from cli import client, render
    from daemon.model.convert import unstructure
    from daemon.model.requests_watch import TopicInfo

    reply = client.call(TopicInfo(run=run_ref, topic=topic))
    facts = unstructure(reply)
    facts["seen"] = _sample(run_ref, topic, sample_s) if sample_s > 0 else None
    if as_json:
        render.out.print(json.dumps(facts), markup=False, highlight=False, soft_wrap=True)
        return 0
    rate = facts["rate"]
    sent = "-" if facts["sent"] is None else str(facts["sent"])
    dropped = "-" if facts["dropped"] is None else str(facts["dropped"])
    lines = [
        ("topic", facts["topic"]),
        ("node", f"{reply.topic.split('/')[0]} ({reply.node_status})"),
        ("rate", "- (no report yet)" if rate is None else f"{rate:.1f}/s (reported by the node)"),
        # each message once, however many receivers; a drop once per edge that missed it
        ("sent", f"{sent}  dropped {dropped} (summed over its edges)"),
        ("observers", str(facts["observers"])),
    ]
    receivers = facts["receivers"] or [None]
    for n, receiver in enumerate(receivers):
        text = "- (nothing reads it)" if receiver is None else (
            f"{receiver['input']}  {receiver['policy']}, queue {receiver['queue_size']}"
        )  # fmt: skip
        lines.append(("receivers" if n == 0 else "", text))
    lines.extend(_seen_lines(facts["seen"], sample_s))
    for label, text in lines:
        render.info(f"{label:<10} {text}")
    return 0


def _seen_lines(seen: dict[str, Any] | None, sample_s: float) -> list[tuple[str, str]]:
    if seen is None:
        return []
    if not seen["messages"]:
        return [("seen", f"no message in {sample_s:g}s")]
    kinds = "; ".join(seen["encodings"])
    sizes = seen["size_bytes"]
    return [
        ("seen", f"{seen['messages']} messages in {sample_s:g}s: {kinds}"),
        ("transport", ", ".join(seen["transport"])),
        ("size", f"min {sizes['min']}  avg {sizes['avg']}  max {sizes['max']} bytes"),
    ]


def _sample(run_ref: str, topic: str, sample_s: float) -> dict[str, Any]:
    """Watch the topic for `sample_s`: how many messages, of which encodings, how large,
    and whether they came inline or in shared memory."""
    from cli.commands.topic_watch import Observer, encoding
    from cli.keys import signals_end_the_view
    from node_sdk.wire import KIND_EOS, KIND_SHM

    encodings: list[str] = []
    transport: set[str] = set()
    sizes: list[int] = []
    with signals_end_the_view(), Observer(run_ref, topic) as observer:
        deadline = time.monotonic() + sample_s
        while len(sizes) < INFO_SAMPLE_MAX and (left := deadline - time.monotonic()) > 0:
            message = observer.next(min(left, 0.5))
            if message is None or isinstance(message, str) or message.header.kind == KIND_EOS:
                continue
            kind = encoding(message.value)
            sizes.append(kind["size"])
            shared = message.header.kind == KIND_SHM or message.header.extra.get("shm")
            transport.add("shared memory" if shared else "inline")
            text = " ".join(
                str(kind[key]) for key in ("type", "dtype", "shape", "arrow_type") if key in kind
            )
            if text not in encodings:
                encodings.append(text)
    return {
        "messages": len(sizes),
        "encodings": encodings,
        "transport": sorted(transport),
        "size_bytes": {"min": min(sizes), "avg": sum(sizes) // len(sizes), "max": max(sizes)}
        if sizes else None,
    }  # fmt: skip


def _verb(verbs: Any, name: str, text: str, example: str) -> Any:
    """A sub-verb whose description is its help as a sentence, with an example."""
    return verbs.add_parser(
        name, help=text, description=text[0].upper() + text[1:] + ".", epilog=f"example: {example}"
    )
